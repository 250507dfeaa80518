-- tests/bench/echo_rtt.lua port [connections=50] [seconds=5] — line round trips per second
-- against an echo server (examples/echo.lua): each connection is a process that sends a
-- line and waits for it to come back, over and over.
local net = require "net"
local P = process

local port = assert(tonumber(arg[1]), "usage: echo_rtt.lua port [connections] [seconds]")
local conns = tonumber(arg[2]) or 50
local seconds = tonumber(arg[3]) or 5
local me = P.self()
local line = "the quick brown fox jumps over the lazy dog\n"

for i = 1, conns do
  P.spawn(function()
    local s = assert(net.connect("127.0.0.1", port, {}, 5000))
    P.send(me, {"ready"})
    P.receive({"go"})
    local n, stop = 0, P.monotonic() + seconds * 1000
    while P.monotonic() < stop do
      assert(net.send(s, line))
      assert(net.recv(s, #line, 5000) == line)
      n = n + 1
    end
    net.close(s)
    P.send(me, {"done", n})
  end)
end
local pids = {}
for _ = 1, conns do P.receive({"ready"}, 10000) end
for _, pid in ipairs(P.list()) do if pid ~= me then pids[#pids + 1] = pid end end
local t0 = P.monotonic()
for _, pid in ipairs(pids) do P.send(pid, {"go"}) end
local total = 0
for _ = 1, conns do total = total + P.receive({"done", P.ANY}, seconds * 1000 + 10000)[2] end
local dt = (P.monotonic() - t0) / 1000
print(string.format("echo: %d connections, %d round trips in %.2f s: %.0f round trips/s",
                    conns, total, dt, total / dt))
