-- bench: round trips of a nested table of about 1 KB (K=3 items, variant=1kb) and of about
-- 100 KB (K=317, variant=100kb). The main process sends {self, payload}; the echo process
-- sends back the payload it received.
-- ./moonbeam -S 2 tests/bench/payload.lua [rounds_1kb=100000] [rounds_100kb=2000]
package.path = (arg[0]:match("^(.*)/") or ".") .. "/?.lua;" .. package.path
local bench = require "benchlib"
local P = process
local VARIANTS = {{"1kb", 3, bench.size(1, 100000)}, {"100kb", 317, bench.size(2, 2000)}}

local function payload(k)
  local items = {}
  for i = 1, k do
    items[i] = {id = i, name = "item-" .. i, score = i * 1.5,
                tags = {"tag-a-" .. i, "tag-b-" .. i}, pos = {x = i, y = 2 * i}}
  end
  return {kind = "payload", count = k, items = items}
end

local function intact(p, k)
  if p.kind ~= "payload" or p.count ~= k or #p.items ~= k then return false end
  for i = 1, k do
    local it = p.items[i]
    if it.id ~= i or it.name ~= "item-" .. i or it.score ~= i * 1.5 or it.tags[2] ~= "tag-b-" .. i
       or it.pos.y ~= 2 * i then return false end
  end
  return true
end

local echo = P.spawn(function()
  while true do
    local m = P.receive()
    P.send(m[1], m[2])
  end
end)

local me = P.self()
for _, v in ipairs(VARIANTS) do
  local name, k, rounds = v[1], v[2], v[3]
  local msg = {me, payload(k)}
  local back, ok = nil, true
  local t0 = P.monotonic()
  for _ = 1, rounds do
    P.send(echo, msg)
    back = P.receive()
    ok = ok and back.count == k
  end
  local t1 = P.monotonic()
  bench.check(ok and intact(back, k), "the " .. name .. " payload came back changed")
  bench.report("payload", {{"variant", name}, {"k", k}, {"n", rounds}}, t1 - t0, rounds)
end
bench.peak("payload")
