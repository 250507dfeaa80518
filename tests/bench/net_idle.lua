-- bench: CPU used by N idle TCP connections (both ends in this runtime, half of them in
-- active mode) over a few seconds of wall time; should be about zero.
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
P.sleep(200)
local c0, t0 = cpu(), P.monotonic()
P.sleep(SECS * 1000)
local c1, t1 = cpu(), P.monotonic()
print(string.format("bench=net_idle connections=%d wall_s=%.1f cpu_s=%.3f cpu_percent=%.2f",
  N, (t1 - t0) / 1000, c1 - c0, (c1 - c0) * 100000 / (t1 - t0)))
os.exit(0)
