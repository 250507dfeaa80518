--- kv_cache — a cache worker in front of the store. Reads are served from its own table
-- when it can; writes go through to the store. A crash only loses the cache: the
-- supervisor starts a fresh one under the same name.
local gen_server = require "gen_server"
local kv_store = require "kv_store"

local M = {}

function M.start_link(name) return gen_server.start_link("kv_cache", name, {name = name}) end

function M.get(cache, key) return gen_server.call(cache, {"get", key}) end
function M.put(cache, key, value) return gen_server.call(cache, {"put", key, value}) end
function M.stats(cache) return gen_server.call(cache, "stats") end

function M.child_spec(name)
  return {id = name, start = {"kv_cache", "start_link", name}}
end

function M.init(name) return "ok", {name = name, cache = {}, hits = 0, misses = 0} end

function M.handle_call(req, _, s)
  if req == "stats" then return "reply", {hits = s.hits, misses = s.misses}, s end
  local op, key, value = req[1], req[2], req[3]
  if op == "get" then
    local v = s.cache[key]
    if v ~= nil then
      s.hits = s.hits + 1
    else
      s.misses = s.misses + 1
      v = kv_store.get(key)
      s.cache[key] = v
    end
    return "reply", v, s
  end
  if op == "put" then
    s.cache[key] = value
    return "reply", kv_store.put(key, value), s
  end
  return "reply", {"error", "bad_request"}, s
end

return M
