-- bench: a gen_server holding an integer; N synchronous calls from 1 client, then
-- 8 clients making N/8 calls each. Prints µs per call and calls per second.
local gen_server = require "gen_server"
local P = process
local N = tonumber(arg and arg[1]) or 1000000

local server = {
  init = function(n) return "ok", n end,
  handle_call = function(req, from, n) return "reply", n + req, n + req end,
}

local pid = assert(gen_server.start_link(server, 0))
local t0 = P.monotonic()
for i = 1, N do gen_server.call(pid, 1) end
local t1 = P.monotonic()
print(string.format("bench=genserver_call clients=1 n=%d seconds=%.3f per_op_us=%.3f calls_per_s=%.0f",
  N, (t1 - t0) / 1000, (t1 - t0) * 1000 / N, N / ((t1 - t0) / 1000)))

local me, per = P.self(), N // 8
t0 = P.monotonic()
for c = 1, 8 do
  P.spawn(function()
    for i = 1, per do gen_server.call(pid, 1) end
    P.send(me, "done")
  end)
end
for c = 1, 8 do P.receive(function(m) return m == "done" end) end
t1 = P.monotonic()
print(string.format("bench=genserver_call clients=8 n=%d seconds=%.3f per_op_us=%.3f calls_per_s=%.0f",
  per * 8, (t1 - t0) / 1000, (t1 - t0) * 1000 / (per * 8), per * 8 / ((t1 - t0) / 1000)))
