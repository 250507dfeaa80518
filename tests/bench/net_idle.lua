-- bench: CPU used by N idle TCP connections (both ends in this runtime, half of them in
-- active mode, half with a process blocked in recv) over a few seconds of wall time (should
-- be about zero), and the memory each connection costs (both ends, and the recv process).
-- usage: moonbeam tests/bench/net_idle.lua [N] [seconds]
local P = process
local net = require "net"
local N = tonumber(arg and arg[1]) or 1000
local SECS = tonumber(arg and arg[2]) or 5

local function cpu()   -- user+system seconds of the whole OS process (all threads)
  local f = assert(io.open("/proc/self/stat"))
  local fields = {}
  for w in f:read("a"):match("%) (.*)"):gmatch("%S+") do fields[#fields + 1] = w end
  f:close()
  return (tonumber(fields[12]) + tonumber(fields[13])) / 100   -- utime, stime in ticks
end

local function rss_kb()
  for line in io.lines("/proc/self/status") do
    local kb = line:match("^VmRSS:%s+(%d+)")
    if kb then return tonumber(kb) end
  end
end

local rss0 = rss_kb()
local ls = assert(net.listen(0, {backlog = 1024}))
local _, port = net.sockname(ls)
local held = {}
for i = 1, N do
  local c = assert(net.connect("127.0.0.1", port, {active = i % 2 == 0}))
  local s = assert(net.accept(ls))
  if i % 2 == 1 then
    -- a process blocked in recv on each odd server end
    local pid = P.spawn(function() local sock = P.receive() net.recv(sock, 0) end)
    net.controlling_process(s, pid)
    P.send(pid, s)
  else
    net.setopts(s, {active = true})
  end
  held[#held + 1] = c
end
-- one exchange on every connection, so each end has read something
for i, c in ipairs(held) do net.send(c, "x") end
P.sleep(500)
local rss1 = rss_kb()
local c0, t0 = cpu(), P.monotonic()
P.sleep(SECS * 1000)
local c1, t1 = cpu(), P.monotonic()
print(string.format("bench=net_idle connections=%d wall_s=%.1f cpu_s=%.3f cpu_percent=%.2f rss_kb_per_connection=%.1f",
  N, (t1 - t0) / 1000, c1 - c0, (c1 - c0) * 100000 / (t1 - t0), (rss1 - rss0) / N))
os.exit(0)
