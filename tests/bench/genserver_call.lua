-- bench: a gen_server holding an integer; N synchronous calls from 1 client, then
-- 8 clients making N/8 calls each. Prints µs per call and calls per second.
-- ./moonbeam -S 2 tests/bench/genserver_call.lua [N=1000000]
package.path = (arg[0]:match("^(.*)/") or ".") .. "/?.lua;" .. package.path
local bench = require "benchlib"
local gen_server = require "gen_server"
local P = process
local N = bench.size(1, 1000000)

local server = {
  init = function(n) return "ok", n end,
  handle_call = function(req, from, n) return "reply", n + req, n + req end,
}

local function report(clients, calls, ms)
  bench.report("genserver_call", {{"clients", clients}, {"n", calls}}, ms, calls,
    {{"calls_per_s", string.format("%.0f", calls / (ms / 1000))}})
end

local pid = assert(gen_server.start_link(server, 0))
local last
local t0 = P.monotonic()
for i = 1, N do last = gen_server.call(pid, 1) end
local t1 = P.monotonic()
bench.check(last == N, "the server counted " .. tostring(last))
report(1, N, t1 - t0)

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
bench.check(gen_server.call(pid, 0) == N + per * 8, "the server lost calls")
report(8, per * 8, t1 - t0)
bench.peak("genserver_call")
