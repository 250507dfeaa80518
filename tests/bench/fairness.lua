-- bench: fairness. N ping-pong round trips between the main process and an echo process,
-- each timed on its own: first with nothing else running (mode=idle), then while 2
-- processes spin in pure loops (mode=loaded). Reports p50 and p99 per round trip.
-- ./moonbeam -S 2 tests/bench/fairness.lua [N=10000]
package.path = (arg[0]:match("^(.*)/") or ".") .. "/?.lua;" .. package.path
local bench = require "benchlib"
local P = process
local N = bench.size(1, 10000)
local SPINNERS = 2

local echo = P.spawn(function()
  while true do
    local m = P.receive()
    P.send(m[1], m[2])
  end
end)

local function spin(main)
  P.send(main, "spinning")
  local x = 0
  while true do x = x + 1 end
end

local function round_trips(mode)
  local me, times, sum = P.self(), {}, 0
  local mono = P.monotonic
  local t0 = mono()
  for i = 1, N do
    local t = mono()
    P.send(echo, {me, i})
    sum = sum + P.receive()
    times[i] = mono() - t
  end
  local t1 = mono()
  bench.check(sum == N * (N + 1) // 2, "wrong sum of answers " .. sum)
  table.sort(times)
  local function pct(p) return string.format("%.2f", times[math.max(1, math.ceil(p * N))] * 1000) end
  bench.report("fairness", {{"mode", mode}, {"n", N}}, t1 - t0, N,
    {{"spinners", mode == "idle" and 0 or SPINNERS}, {"p50_us", pct(0.50)}, {"p99_us", pct(0.99)}})
end

round_trips("idle")
local spinners = {}
for i = 1, SPINNERS do spinners[i] = P.spawn(spin, P.self()) end
for _ = 1, SPINNERS do P.receive(function(m) return m == "spinning" end) end
round_trips("loaded")
for i = 1, SPINNERS do P.exit(spinners[i], "kill") end
bench.peak("fairness")
