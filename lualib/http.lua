--- http — an HTTP/1.1 server (one process per connection, under a supervisor) and a small
-- client.
--
--     local http = require "http"
--     local sup, port = http.start_link({port = 8080, handler = function(req)
--       if req.path == "/hello" then
--         return 200, {["content-type"] = "text/plain"}, "hello " .. (req.query or "") .. "\n"
--       end
--       return 404, nil, "not found\n"
--     end})
--     local status, headers, body = http.request("GET", "http://127.0.0.1:" .. port .. "/hello?you")
--     --> 200, {["content-length"] = "10", ...}, "hello you\n"
--
-- ## The server
--
-- `start_link(opts)` (or `server(opts)`) → sup, port | nil, reason. The server is a
-- tcp_server tree (see tcp_server): a supervisor with a connections supervisor and an
-- acceptor; each connection is served by its own process. opts:
--
-- * `handler` (required): a function `handler(req) -> status, headers, body`, or "mod.fn".
--   It runs in the connection's process, once per request.
--   - req = {method, target, path, query, version, headers, body, keep_alive} as
--     http_parser.parse_request gives it (header names lower case; query nil without "?";
--     path and query as sent, not percent-decoded: see `unescape`), plus `peer` = {ip, port}.
--   - status: an integer 100..599. headers: nil, or a table of name = value (value a
--     string, a number, or an array of values for a repeated field) and/or an array of
--     {name, value} pairs. body: nil, a string or a number.
--   - The server adds `content-length` (unless the handler set it or `transfer-encoding`,
--     or the status has no body), `date`, and `connection: close` when the connection is
--     to close. A HEAD request gets the headers without the body.
--   - A handler that raises, or returns something else, gets the client a 500 and ends
--     that connection's process with the error as its reason (an error report with the
--     request and the handler's traceback, then the crash report); other connections
--     and the server are not affected.
-- * `port`, `ip`, `max_connections`, `name`, `backlog`, `nodelay`: as tcp_server's.
-- * `max_header_size` (8192), `max_headers` (100), `max_body_size` (1048576): limits
--   (see http_parser); past them the answer is 414, 431 or 413 and the connection closes.
-- * `read_timeout` (10000 ms): the time a request may take to arrive, from the moment its
--   connection opens or its first byte comes; past it the answer is 408 and the
--   connection closes.
-- * `idle_timeout` (60000 ms): how long a kept-alive connection may wait for its next
--   request; past it the connection closes without an answer.
-- * `send_timeout` (30000 ms): how long writing one response may wait for a client that
--   does not read; past it the connection closes.
--
-- A malformed request gets 400 (505 for an unknown HTTP version, 501 for an unknown
-- transfer coding), then the connection closes; so does a connection that ends in the
-- middle of a request. Requests are HTTP/1.0 or 1.1; 1.1 connections stay open unless
-- the client or the handler says `connection: close`; pipelined requests are answered in
-- order. `expect: 100-continue` gets a 100 before the body is read.
--
-- `child_spec(opts)` puts a server in another supervision tree; `port(sup)` gives its
-- port; `connections(sup)` the pids of its connection processes.
--
-- ## The client (for tests and scripts)
--
-- `request(method, url, [opts])` → status, headers, body | nil, reason. url is
-- "http://host[:port]/path?query". opts: `headers` (a table name = value), `body` (a
-- string), `timeout` (5000 ms, for the whole exchange), `socket` (an open connection from
-- net.connect: the request goes over it and it stays open, for keep-alive; without it
-- the request is sent with `connection: close` on a fresh connection). Response header
-- names are lower case. reason: a net error ("econnrefused", "timeout", "closed", ...),
-- "bad_url" or "bad_response".
--
-- ## The parser
--
-- `parse_request`, `parse_head`, `parse_body`, `parse_response` and `LIMITS` are
-- http_parser's (see there); `REASONS` maps status codes to reason phrases.
-- @module http

local process = require "process"
local net = require "net"
local tcp_server = require "tcp_server"
local parser = require "http_parser"
local logger = require "logger"

local type, error, pcall, xpcall, tostring, tonumber =
  type, error, pcall, xpcall, tostring, tonumber
local debug_traceback = debug.traceback
local pairs, ipairs = pairs, ipairs
local math_type, math_floor = math.type, math.floor
local string_lower, string_find, string_sub, string_format =
  string.lower, string.find, string.sub, string.format
local table_concat, table_sort = table.concat, table.sort
local os_date = os.date
local now = process.monotonic

local M = {}

M.parse_request = parser.parse_request
M.parse_head = parser.parse_head
M.parse_body = parser.parse_body
M.parse_response = parser.parse_response
M.LIMITS = parser.LIMITS

M.REASONS = {
  [100] = "Continue", [101] = "Switching Protocols",
  [200] = "OK", [201] = "Created", [202] = "Accepted", [204] = "No Content",
  [206] = "Partial Content",
  [301] = "Moved Permanently", [302] = "Found", [303] = "See Other", [304] = "Not Modified",
  [307] = "Temporary Redirect", [308] = "Permanent Redirect",
  [400] = "Bad Request", [401] = "Unauthorized", [403] = "Forbidden", [404] = "Not Found",
  [405] = "Method Not Allowed", [408] = "Request Timeout", [409] = "Conflict",
  [411] = "Length Required", [413] = "Content Too Large", [414] = "URI Too Long",
  [415] = "Unsupported Media Type", [417] = "Expectation Failed",
  [422] = "Unprocessable Content", [429] = "Too Many Requests",
  [431] = "Request Header Fields Too Large",
  [500] = "Internal Server Error", [501] = "Not Implemented", [502] = "Bad Gateway",
  [503] = "Service Unavailable", [505] = "HTTP Version Not Supported",
}

local DEFAULTS = {read_timeout = 10000, idle_timeout = 60000, send_timeout = 30000}

--- Percent-decodes a path or query component ("+" stays "+").
function M.unescape(s)
  return (s:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end

-- ===================================================================== responses

local function no_body(status) return status < 200 or status == 204 or status == 304 end

local function check_field(name, value)
  name, value = tostring(name), tostring(value)
  if not string_find(name, "^[%w!#$%%&'*+%-.^_`|~]+$") or string_find(value, "[\r\n%z]") then
    error("bad response header " .. string_format("%q", name), 0)
  end
  return name, value
end

--- The bytes of a response. keep_alive is the connection's state; the result says whether
-- it stays open after this response (the handler may close it with `connection: close`).
local function encode_response(status, headers, body, method, keep_alive)
  local out = {"HTTP/1.1 ", tostring(status), " ", M.REASONS[status] or "Unknown", "\r\n"}
  local seen = {}
  local function add(name, value)
    name, value = check_field(name, value)
    local lower = string_lower(name)
    seen[lower] = true
    if lower == "connection" and string_find(string_lower(value), "close", 1, true) then
      keep_alive = false
    end
    out[#out + 1] = name .. ": " .. value .. "\r\n"
  end
  if headers then
    for _, pair in ipairs(headers) do add(pair[1], pair[2]) end
    local names = {}
    for k in pairs(headers) do
      if type(k) == "string" then names[#names + 1] = k end
    end
    table_sort(names)
    for _, k in ipairs(names) do
      local v = headers[k]
      if type(v) == "table" then
        for _, x in ipairs(v) do add(k, x) end
      else
        add(k, v)
      end
    end
  end
  if not seen["content-length"] and not seen["transfer-encoding"] and not no_body(status) then
    out[#out + 1] = "content-length: " .. #body .. "\r\n"
  end
  if not seen.date then
    out[#out + 1] = os_date("!date: %a, %d %b %Y %H:%M:%S GMT\r\n")
  end
  if not keep_alive and not seen.connection then out[#out + 1] = "connection: close\r\n" end
  out[#out + 1] = "\r\n"
  if method ~= "HEAD" and not no_body(status) then out[#out + 1] = body end
  return table_concat(out), keep_alive
end

--- Closes after an error answer: stop writing, then read (and drop) what the client is
-- still sending for a little while, so the kernel does not answer it with a reset that
-- could destroy the response before the client reads it.
local function lingering_close(sock)
  net.shutdown(sock, "write")
  local deadline = now() + 1000
  local left = 1 << 20
  while left > 0 do
    local wait = deadline - now()
    if wait <= 0 then break end
    local data = net.recv(sock, 0, math_floor(wait) + 1)
    if not data then break end
    left = left - #data
  end
  net.close(sock)
end

--- Answers with an error status, then closes.
local function send_error(sock, status, cfg)
  local bytes = encode_response(status, nil, (M.REASONS[status] or "Error") .. "\n",
                                "GET", false)
  net.send(sock, bytes, cfg.send_timeout)
  lingering_close(sock)
end

-- ===================================================================== connections

--- Reads until `parse(buf)` gives a result or fails. Returns the parse results, the
-- buffer, and on failure a status to answer (or false: close without a word).
local function read_until(sock, cfg, buf, deadline, idle, parse)
  while true do
    local a, b, status = parse(buf)
    if a then return a, b, buf end
    if b ~= "incomplete" then return nil, status, buf end
    local wait = deadline - now()
    local data, err
    if wait <= 0 then
      err = "timeout"
    else
      data, err = net.recv(sock, 0, math_floor(wait) + 1)
    end
    if not data then
      local empty = not string_find(buf, "[^\r\n]")
      if empty and (idle or err ~= "timeout") then return nil, false, buf end
      return nil, err == "timeout" and 408 or 400, buf
    end
    if idle and not string_find(buf, "[^\r\n]") and string_find(data, "[^\r\n]") then
      deadline, idle = now() + cfg.read_timeout, false
    end
    buf = buf .. data
  end
end

--- Runs the handler: status, headers, body | nil, reason, traceback (the traceback where
-- the handler raised, which the crash report of the connection could not show: by then
-- the stack is the server's).
local function call_handler(handler, req)
  local trace
  local ok, status, headers, body = xpcall(handler, function(e)
    trace = debug_traceback(nil, 2)
    return e
  end, req)
  if not ok then return nil, status, trace end
  if math_type(status) ~= "integer" or status < 100 or status > 599
     or (headers ~= nil and type(headers) ~= "table")
     or (body ~= nil and type(body) ~= "string" and type(body) ~= "number") then
    return nil, {"bad_return_value", {status, headers, body}}
  end
  return status, headers, body == nil and "" or tostring(body)
end

--- The response to req: bytes, keep_alive | nil, reason, traceback.
local function respond(handler, req)
  local status, headers, body = call_handler(handler, req)
  if not status then return nil, headers, body end
  local ok, bytes, keep = pcall(encode_response, status, headers, body, req.method,
                                req.keep_alive)
  if not ok then return nil, bytes end
  return bytes, keep
end

--- Serves one connection: requests one after another until one of the sides closes.
function M._serve(sock, cfg)
  local handler = cfg.handler
  if type(handler) == "string" then
    local mod, fn = handler:match("^(.*)%.([^.]+)$")
    handler = require(mod)[fn]
  end
  local ip, port = net.peername(sock)
  local limits = cfg.limits
  local buf, served = "", 0
  while true do
    local idle = served > 0
    local deadline = now() + (idle and cfg.idle_timeout or cfg.read_timeout)
    local head, pos
    head, pos, buf = read_until(sock, cfg, buf, deadline, idle, function(b)
      return parser.parse_head(b, 1, limits)
    end)
    if not head then
      if pos then send_error(sock, pos, cfg) else net.close(sock) end
      return
    end
    local expect = head.headers.expect
    if expect then
      if string_lower(expect) ~= "100-continue" then
        send_error(sock, 417, cfg)
        return
      end
      if head.version == "1.1" and #buf < pos + (head.length or 1) - 1 then
        net.send(sock, "HTTP/1.1 100 Continue\r\n\r\n", cfg.send_timeout)
      end
    end
    local body, rest
    body, rest, buf = read_until(sock, cfg, buf, now() + cfg.read_timeout, false,
                                 function(b) return parser.parse_body(b, pos, head, limits) end)
    if not body then
      if rest then send_error(sock, rest, cfg) else net.close(sock) end
      return
    end
    buf = string_sub(buf, rest)
    head.body, head.peer = body, {ip, port}
    local bytes, keep, trace = respond(handler, head)
    if not bytes then
      send_error(sock, 500, cfg)
      logger.report("error", "http: the handler failed; the client got a 500",
                    {{"request", head.method .. " " .. head.target},
                     {"reason", keep, quote = true},
                     trace and {"traceback", trace} or nil})
      error(keep, 0)
    end
    if not net.send(sock, bytes, cfg.send_timeout) then
      net.close(sock)
      return
    end
    if not keep then
      lingering_close(sock)
      return
    end
    served = served + 1
  end
end

-- ===================================================================== the server

local function server_opts(opts, fname)
  if type(opts) ~= "table" then
    error("bad argument #1 to '" .. fname .. "' (table expected, got " .. type(opts) .. ")", 3)
  end
  local limits = {}
  for k, v in pairs(parser.LIMITS) do limits[k] = opts[k] or v end
  local cfg = {handler = opts.handler, limits = limits,
               read_timeout = opts.read_timeout or DEFAULTS.read_timeout,
               idle_timeout = opts.idle_timeout or DEFAULTS.idle_timeout,
               send_timeout = opts.send_timeout or DEFAULTS.send_timeout}
  local h = opts.handler
  if type(h) ~= "function" and (type(h) ~= "string" or not h:find("^[%w_.]+%.[%w_]+$")) then
    error("bad argument #1 to '" .. fname .. "' (handler must be a function or \"mod.fn\")", 3)
  end
  return {handler = "http._serve", args = {cfg}, port = opts.port, ip = opts.ip,
          backlog = opts.backlog, nodelay = opts.nodelay, name = opts.name,
          max_connections = opts.max_connections}
end

function M.start_link(opts)
  return tcp_server.start_link(server_opts(opts, "start_link"))
end

M.server = M.start_link

function M.child_spec(opts)
  local spec = tcp_server.child_spec(server_opts(opts, "child_spec"))
  spec.id = opts.name or "http"
  return spec
end

M.port = tcp_server.port
M.connections = tcp_server.connections

-- ===================================================================== the client

local function parse_url(url)
  if type(url) ~= "string" then return nil end
  local host, port, target = url:match("^http://([^/:?#]+):?(%d*)([^#]*)")
  if not host then return nil end
  if target == "" then target = "/" end
  if string_sub(target, 1, 1) == "?" then target = "/" .. target end
  return host, tonumber(port) or 80, target
end

local function encode_request(method, host, port, target, opts)
  local out = {method, " ", target, " HTTP/1.1\r\n"}
  local headers = opts.headers or {}
  local seen = {}
  for k, v in pairs(headers) do
    seen[string_lower(k)] = true
    out[#out + 1] = k .. ": " .. tostring(v) .. "\r\n"
  end
  if not seen.host then out[#out + 1] = "host: " .. host .. ":" .. port .. "\r\n" end
  local body = opts.body
  if not seen["content-length"] and not seen["transfer-encoding"]
     and (body or method == "POST" or method == "PUT") then
    out[#out + 1] = "content-length: " .. #(body or "") .. "\r\n"
  end
  if not opts.socket and not seen.connection then out[#out + 1] = "connection: close\r\n" end
  out[#out + 1] = "\r\n"
  out[#out + 1] = body
  return table_concat(out)
end

function M.request(method, url, opts)
  if type(method) ~= "string" then
    error("bad argument #1 to 'request' (string expected, got " .. type(method) .. ")", 2)
  end
  opts = opts or {}
  local host, port, target = parse_url(url)
  if not host then return nil, "bad_url" end
  local deadline = now() + (opts.timeout or 5000)
  local sock, err = opts.socket
  if not sock then
    sock, err = net.connect(host, port, {}, opts.timeout or 5000)
    if not sock then return nil, err end
  end
  local function finish(...)
    if not opts.socket then net.close(sock) end
    return ...
  end
  local ok, e = net.send(sock, encode_request(method, host, port, target, opts))
  if not ok then return finish(nil, e) end
  local buf, eof = "", false
  while true do
    local resp, r = parser.parse_response(buf, 1, {head = method == "HEAD", eof = eof})
    if resp and resp.status >= 200 then
      return finish(resp.status, resp.headers, resp.body)
    elseif resp then
      buf = string_sub(buf, r)          -- a 1xx: the real answer follows
    elseif r ~= "incomplete" then
      return finish(nil, r)
    elseif eof then
      return finish(nil, buf == "" and "closed" or "bad_response")
    else
      local wait = deadline - now()
      if wait <= 0 then return finish(nil, "timeout") end
      local data, rerr = net.recv(sock, 0, math_floor(wait) + 1)
      if data then
        buf = buf .. data
      elseif rerr == "closed" then
        eof = true
      else
        return finish(nil, rerr)
      end
    end
  end
end

return M
