-- bench: N processes in a ring pass an integer token M rounds (N*M hops). The token is the
-- number of hops left; the process that receives 0 reports its position, which must be
-- the first one again (N*M is a multiple of N).
-- ./moonbeam -S 2 tests/bench/ring.lua [N=1000] [M=1000]
package.path = (arg[0]:match("^(.*)/") or ".") .. "/?.lua;" .. package.path
local bench = require "benchlib"
local P = process
local N, M = bench.size(1, 1000), bench.size(2, 1000)

local function member(main, index)
  local next = P.receive(P.is_pid)
  while true do
    local t = P.receive()
    if t == 0 then P.send(main, index) else P.send(next, t - 1) end
  end
end

local me = P.self()
local ring = {}
for i = 1, N do ring[i] = P.spawn(member, me, i) end
for i = 1, N do P.send(ring[i], ring[i % N + 1]) end

local t0 = P.monotonic()
P.send(ring[1], N * M)
local last = P.receive()
local t1 = P.monotonic()
bench.check(last == 1, "the token ended at process " .. tostring(last))
bench.report("ring", {{"n", N}, {"m", M}}, t1 - t0, N * M)
bench.peak("ring")
