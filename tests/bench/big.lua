-- bench: big (Savina #7). N processes; each sends M pings, one at a time, to neighbours
-- picked by an LCG (x = (x*1103515245 + 12345) & 0x7fffffff, target (x >> 8) % N, seed
-- its index + 1, index from 0) and answers every ping it gets with a pong. A ping is the
-- sender's index, a pong the string "pong". Each process tells the main one when its M-th
-- pong came, and keeps answering pings. 2*N*M messages; per_op_us is per message.
-- ./moonbeam -S 2 tests/bench/big.lua [N=1000] [M=1000]
package.path = (arg[0]:match("^(.*)/") or ".") .. "/?.lua;" .. package.path
local bench = require "benchlib"
local P = process
local N, M = bench.size(1, 1000), bench.size(2, 1000)

local function member(main, id, n, m)
  local peers = P.receive(function(msg) return type(msg) == "table" end)
  local x, sent = id + 1, 0
  local function ping()
    x = (x * 1103515245 + 12345) & 0x7fffffff
    P.send(peers[(x >> 8) % n + 1], id)
    sent = sent + 1
  end
  P.receive(function(msg) return msg == "go" end)
  ping()
  while true do
    local msg = P.receive()
    if msg == "pong" then
      if sent < m then ping() else P.send(main, "done") end
    else
      P.send(peers[msg + 1], "pong")
    end
  end
end

local me = P.self()
local peers = {}
for i = 1, N do peers[i] = P.spawn(member, me, i - 1, N, M) end
for i = 1, N do P.send(peers[i], peers) end

local t0 = P.monotonic()
for i = 1, N do P.send(peers[i], "go") end
for _ = 1, N do P.receive() end
local t1 = P.monotonic()
bench.report("big", {{"n", N}, {"m", M}}, t1 - t0, 2 * N * M, {{"messages", 2 * N * M}})
bench.peak("big")
