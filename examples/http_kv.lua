-- examples/http_kv.lua [port] — an HTTP key-value service on 127.0.0.1 (port 8080 by default).
--
--     ./moonbeam examples/http_kv.lua 8080
--     curl -X PUT --data-binary 'hello' http://127.0.0.1:8080/kv/greeting    # 201 Created
--     curl http://127.0.0.1:8080/kv/greeting                                 # 200 hello
--     curl -X DELETE http://127.0.0.1:8080/kv/greeting                       # 204 No Content
--
-- GET/HEAD /kv/<key> → 200 and the value, or 404; PUT /kv/<key> with the value as the body
-- → 201 (new key) or 204 (replaced); DELETE /kv/<key> → 204, or 404; GET /kv/ → the keys,
-- one per line, sorted; other methods → 405. Keys are percent-decoded.
--
-- The tree ("http_kv", rest_for_one):
--
--     http_kv
--     ├── store        an agent holding the table of keys and values (named "kv_store")
--     └── http         the HTTP server (acceptor + one process per connection)
--
-- The handler runs in each connection's process and talks to the store by agent calls;
-- if the store dies, it is restarted empty and the server after it.
local supervisor = require "supervisor"
local http = require "http"
local agent = require "agent"

local port = tonumber(arg and arg[1]) or 8080

local TEXT = {["content-type"] = "text/plain"}

local function keys(s)
  local list = {}
  for k in pairs(s) do list[#list + 1] = k end
  table.sort(list)
  return list
end

local function handler(req)
  if req.path == "/kv/" or req.path == "/kv" then
    if req.method ~= "GET" and req.method ~= "HEAD" then
      return 405, {allow = "GET, HEAD", ["content-type"] = "text/plain"}, "method not allowed\n"
    end
    local list = agent.get("kv_store", keys)
    return 200, TEXT, #list > 0 and table.concat(list, "\n") .. "\n" or ""
  end
  local key = req.path:match("^/kv/(.+)$")
  if not key then return 404, TEXT, "not found\n" end
  key = http.unescape(key)
  local m = req.method
  if m == "GET" or m == "HEAD" then
    local v = agent.get("kv_store", function(s) return s[key] end)
    if v == nil then return 404, TEXT, "no such key\n" end
    return 200, {["content-type"] = "application/octet-stream"}, v
  elseif m == "PUT" then
    local value = req.body
    local new = agent.get_and_update("kv_store", function(s)
      local fresh = s[key] == nil
      s[key] = value
      return fresh, s
    end)
    return new and 201 or 204, nil, nil
  elseif m == "DELETE" then
    local had = agent.get_and_update("kv_store", function(s)
      local old = s[key]
      s[key] = nil
      return old ~= nil, s
    end)
    if not had then return 404, TEXT, "no such key\n" end
    return 204
  end
  return 405, {allow = "GET, HEAD, PUT, DELETE", ["content-type"] = "text/plain"},
         "method not allowed\n"
end

process.flag("trap_exit", true)   -- a tree that fails to start must not take us down unheard
local sup, err = supervisor.start_link({
  {id = "store", start = {"agent", "start_link", function() return {} end, {name = "kv_store"}}},
  http.child_spec({port = port, handler = handler, name = "http"}),
}, {strategy = "rest_for_one", name = "http_kv"})
if not sup then
  io.stderr:write("http_kv: cannot start: ", require("pretty").format(err), "\n")
  os.exit(1)
end
print("http_kv: listening on http://127.0.0.1:" .. port .. "/kv/")
io.stdout:flush()
-- The tree lives as long as this (the first) process; if the tree gives up, so do we.
local msg = process.receive({"EXIT", sup, process.ANY})
io.stderr:write("http_kv: the tree stopped: ", require("pretty").format(msg[3]), "\n")
os.exit(1)
