-- bench: two processes, N round trips of an integer ({pid, i} there, i back).
-- ./moonbeam -S 2 tests/bench/pingpong.lua [N=1000000]
package.path = (arg[0]:match("^(.*)/") or ".") .. "/?.lua;" .. package.path
local bench = require "benchlib"
local P = process
local N = bench.size(1, 1000000)
local pong = P.spawn(function()
  while true do
    local m = P.receive()
    P.send(m[1], m[2])
  end
end)
local me = P.self()
local sum = 0
local t0 = P.monotonic()
for i = 1, N do
  P.send(pong, {me, i})
  sum = sum + P.receive()
end
local t1 = P.monotonic()
bench.check(sum == N * (N + 1) // 2, "wrong sum of answers " .. sum)
bench.report("pingpong", {{"n", N}}, t1 - t0, N)
bench.peak("pingpong")
