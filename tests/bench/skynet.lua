-- bench: skynet. A 10-ary tree of processes: each inner node spawns 10 children and sends
-- the sum of their answers to its parent; the L leaves (L a power of 10) send their
-- numbers 0 .. L-1. The root's answer must be L*(L-1)/2. 1,111,111 processes for L = 10^6.
-- ./moonbeam -S 2 tests/bench/skynet.lua [L=1000000]
package.path = (arg[0]:match("^(.*)/") or ".") .. "/?.lua;" .. package.path
local bench = require "benchlib"
local P = process
local L = bench.size(1, 1000000)
local procs, l = 1, L
while l > 1 do
  bench.check(l % 10 == 0, "the number of leaves must be a power of 10")
  l = l // 10
  procs = procs + L // l
end

local function node(parent, num, size)
  if size == 1 then
    P.send(parent, num)
    return
  end
  local me, sub = P.self(), size // 10
  for i = 0, 9 do P.spawn(node, me, num + i * sub, sub) end
  local sum = 0
  for _ = 1, 10 do sum = sum + P.receive() end
  P.send(parent, sum)
end

local t0 = P.monotonic()
P.spawn(node, P.self(), 0, L)
local sum = P.receive()
local t1 = P.monotonic()
bench.check(sum == L * (L - 1) // 2, "wrong sum " .. sum)
bench.report("skynet", {{"leaves", L}, {"n", procs}}, t1 - t0, procs, {{"sum", sum}})
bench.peak("skynet")
