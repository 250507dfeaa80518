-- examples/kv/main.lua — a supervised key-value service, and what happens when parts of
-- it are killed. Run from anywhere: `moonbeam examples/kv/main.lua` (make run does).
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
package.path = dir .. "?.lua;" .. package.path

local P = process
local supervisor = require "supervisor"
local kv_store, kv_cache, kv_sup = require "kv_store", require "kv_cache", require "kv_sup"

local function say(fmt, ...) print(string.format(fmt, ...)) end

local function tree()
  local lines = {}
  for _, c in ipairs(supervisor.which_children("kv_sup")) do
    lines[#lines + 1] = string.format("%s=%s", c[1], tostring(c[2]))
  end
  for _, c in ipairs(supervisor.which_children("kv_cache_sup")) do
    lines[#lines + 1] = string.format("%s=%s", c[1], tostring(c[2]))
  end
  return table.concat(lines, " ")
end

--- Waits until a registered name points at a new pid (the supervisor restarted it).
local function await_new(name, old)
  for _ = 1, 200 do
    local pid = P.whereis(name)
    if pid and pid ~= old then return pid end
    P.sleep(5)
  end
end

assert(kv_sup.start_link())
say("started the tree: %s", tree())

for i = 1, 5 do kv_cache.put("cache_a", "k" .. i, i * i) end
say("wrote 5 keys through cache_a; the store holds %d", kv_store.count())
say("cache_b reads k3 = %s (a miss, fetched from the store)", kv_cache.get("cache_b", "k3"))
say("cache_b reads k3 = %s (a hit); stats %s", kv_cache.get("cache_b", "k3"),
    require("pretty").format(kv_cache.stats("cache_b")))

local old = P.whereis("cache_b")
say("killing cache_b %s ...", tostring(old))
P.exit(old, "kill")
local new = await_new("cache_b", old)
say("kv_cache_sup restarted it as %s; its cache is empty: stats %s", tostring(new),
    require("pretty").format(kv_cache.stats("cache_b")))
say("cache_b reads k3 = %s (from the store again)", kv_cache.get("cache_b", "k3"))

local sup = P.whereis("kv_cache_sup")
say("crashing the caches three times in a row, past kv_cache_sup's intensity (2 in 5 s) ...")
for _ = 1, 3 do
  local c = P.whereis("cache_a")
  if c then P.exit(c, "kill") end
  await_new("cache_a", c)
end
local new_sup = await_new("kv_cache_sup", sup)
say("kv_cache_sup %s gave up; kv_sup started a new one: %s", tostring(sup), tostring(new_sup))
await_new("cache_a", nil)
say("the tree now: %s", tree())
say("the store kept its data: %d keys, k5 = %s", kv_store.count(), kv_cache.get("cache_a", "k5"))
supervisor.stop("kv_sup")
say("stopped the tree; %d process(es) left", #P.list())
