-- bench: spawn N processes that block in receive; time the spawning, memory per idle
-- process (RSS growth / N), then the time to stop them all.
local P = process
local N = tonumber(arg and arg[1]) or 100000
local function rss_kb()
  local f = io.open("/proc/self/status")
  local kb = tonumber(f:read("a"):match("VmRSS:%s*(%d+)"))
  f:close()
  return kb
end
local me = P.self()
local function idle() P.receive() end
local rss0 = rss_kb()
local t0 = P.monotonic()
local pids = {}
for i = 1, N do pids[i] = P.spawn(idle) end
local t1 = P.monotonic()
-- wait until every child has run to its receive (all waiting), then measure
while true do
  local busy = 0
  for i = N - 100, N do local inf = P.info(pids[i]); if inf and inf.status ~= "waiting" then busy = busy + 1 end end
  if busy == 0 then break end
  P.sleep(10)
end
P.sleep(200)
local rss1 = rss_kb()
local mem = 0
for i = 1, 100 do mem = mem + P.info(pids[i]).memory end
local t2 = P.monotonic()
for i = 1, N do P.exit(pids[i], "kill") end
while #P.list() > 1 do P.sleep(5) end
local t3 = P.monotonic()
print(string.format("bench=spawn n=%d seconds=%.3f per_op_us=%.3f rss_per_proc_bytes=%d lua_heap_bytes=%d exit_us=%.3f",
  N, (t1 - t0) / 1000, (t1 - t0) * 1000 / N, (rss1 - rss0) * 1024 // N, mem // 100, (t3 - t2) * 1000 / N))
