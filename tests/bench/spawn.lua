-- bench: spawn N processes that block in receive; time the spawning, memory per idle
-- process (RSS growth / N), then the time to stop them all.
-- ./moonbeam -S 2 tests/bench/spawn.lua [N=100000]
package.path = (arg[0]:match("^(.*)/") or ".") .. "/?.lua;" .. package.path
local bench = require "benchlib"
local P = process
local N = bench.size(1, 100000)
local function idle() P.receive() end
local rss0 = bench.status_kb("VmRSS")
local t0 = P.monotonic()
local pids = {}
for i = 1, N do pids[i] = P.spawn(idle) end
local t1 = P.monotonic()
-- wait until every child has run to its receive (all waiting), then measure
while true do
  local busy = 0
  for i = math.max(1, N - 100), N do
    local inf = P.info(pids[i])
    if inf and inf.status ~= "waiting" then busy = busy + 1 end
  end
  if busy == 0 then break end
  P.sleep(10)
end
P.sleep(200)
local rss1 = bench.status_kb("VmRSS")
local mem, sampled = 0, math.min(N, 100)
for i = 1, sampled do mem = mem + P.info(pids[i]).memory end
bench.check(#P.list() == N + 1, "expected " .. N + 1 .. " processes, found " .. #P.list())
local t2 = P.monotonic()
for i = 1, N do P.exit(pids[i], "kill") end
while #P.list() > 1 do P.sleep(5) end
local t3 = P.monotonic()
bench.report("spawn", {{"n", N}}, t1 - t0, N, {
  {"rss_per_proc_bytes", (rss1 - rss0) * 1024 // N},
  {"lua_heap_bytes", mem // sampled},
  {"exit_us", string.format("%.3f", (t3 - t2) * 1000 / N)}})
bench.peak("spawn")
