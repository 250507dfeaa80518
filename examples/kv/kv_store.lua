--- kv_store — the store of the key-value service: a gen_server owning the data.
-- It never crashes on purpose: restarting it would lose the data, so it is the one
-- process the cache workers go to.
local gen_server = require "gen_server"

local M = {}

function M.start_link() return gen_server.start_link("kv_store", nil, {name = "kv_store"}) end

function M.put(key, value) return gen_server.call("kv_store", {"put", key, value}) end
function M.get(key) return gen_server.call("kv_store", {"get", key}) end
function M.count() return gen_server.call("kv_store", "count") end

function M.init() return "ok", {data = {}, n = 0} end

function M.handle_call(req, _, s)
  if req == "count" then return "reply", s.n, s end
  local op, key, value = req[1], req[2], req[3]
  if op == "get" then return "reply", s.data[key], s end
  if op == "put" then
    if s.data[key] == nil then s.n = s.n + 1 end
    s.data[key] = value
    return "reply", "ok", s
  end
  return "reply", {"error", "bad_request"}, s
end

return M
