-- http_spec.lua — the HTTP server and client over loopback sockets: keep-alive,
-- pipelining, chunked bodies, limits, timeouts, handler failures, and garbage input.
-- (The parser alone is in http_parser_spec.lua.)
local support = dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "support.lua")
package.path = support.dir .. "/fixtures/http/?.lua;" .. package.path
local http = require "http"
local net = require "net"
local supervisor = require "supervisor"
local P = process

--- The handler of the test server: what it answers depends on the path.
local function handler(req)
  local path = req.path
  if path == "/hello" then
    return 200, {["content-type"] = "text/plain"}, "hello " .. (req.query or "") .. "\n"
  elseif path == "/echo" then
    return 200, {["x-method"] = req.method, ["x-version"] = req.version}, req.body
  elseif path == "/pid" then
    return 200, nil, tostring(process.self())
  elseif path == "/headers" then
    local names = {}
    for k, v in pairs(req.headers) do names[#names + 1] = k .. "=" .. v end
    table.sort(names)
    return 200, nil, table.concat(names, ";")
  elseif path == "/boom" then
    error("handler failed", 0)
  elseif path == "/bad" then
    return "two hundred"
  elseif path == "/inject" then
    return 200, {["x-a"] = "a\r\nx-b: evil"}, "body"
  elseif path == "/close" then
    return 200, {connection = "close"}, "bye"
  elseif path == "/multi" then
    return 201, {{"x-b", "1"}, {"x-a", "2"}, ["set-cookie"] = {"a=1", "b=2"}}, 42
  elseif path == "/slow" then
    process.sleep(200)
    return 200, nil, "slow"
  end
  return 404, nil, "not found\n"
end

local server, port, base

local function start(opts)
  opts = opts or {}
  opts.port = 0
  opts.handler = opts.handler or handler
  local sup, p = http.start_link(opts)
  assert(sup, p)
  return sup, p
end

local function connect()
  return assert(net.connect("127.0.0.1", port, {}, 2000))
end

--- Reads one response from sock (nil, err when none comes).
local function read_response(sock, buf, opts)
  buf = buf or ""
  while true do
    local r, next = http.parse_response(buf, 1, opts)
    if r then return r, buf:sub(next) end
    if next ~= "incomplete" then return nil, next end
    local data, err = net.recv(sock, 0, 3000)
    if not data then return nil, err end
    buf = buf .. data
  end
end

--- Everything the peer sends until it closes (or 3 s pass).
local function read_all(sock)
  local parts = {}
  while true do
    local data, err = net.recv(sock, 0, 3000)
    if not data then return table.concat(parts), err end
    parts[#parts + 1] = data
  end
end

--- Sends raw bytes on a fresh connection, half-closes it, returns all that comes back.
local function exchange(bytes, keep_writing)
  local sock = connect()
  net.send(sock, bytes)
  if not keep_writing then net.shutdown(sock, "write") end
  local out, err = read_all(sock)
  net.close(sock)
  return out, err
end

local function status_line(bytes) return bytes:match("^[^\r]*") end

describe("http server", function()
  setup(function()
    server, port = start({read_timeout = 400, idle_timeout = 300})
    base = "http://127.0.0.1:" .. port
  end)

  teardown(function()
    P.unlink(server)
    P.exit(server, "shutdown")
  end)

  it("answers a GET with status, the handler's headers, content-length and date", function()
    local status, headers, body = http.request("GET", base .. "/hello?you")
    assert.are.equal(200, status)
    assert.are.equal("hello you\n", body)
    assert.are.equal("text/plain", headers["content-type"])
    assert.are.equal("10", headers["content-length"])
    assert.are.equal("close", headers.connection)
    assert.is_truthy(headers.date:match("^%a%a%a, %d%d %a%a%a %d%d%d%d %d%d:%d%d:%d%d GMT$"))
  end)

  it("writes the status line and header order exactly", function()
    local sock = connect()
    net.send(sock, "GET /multi HTTP/1.1\r\nHost: h\r\n\r\n")
    local out = ""
    while not out:find("\r\n\r\n42$") do out = out .. assert(net.recv(sock, 0, 2000)) end
    net.close(sock)
    out = out:gsub("date: [^\r]*\r\n", "")
    assert.are.equal("HTTP/1.1 201 Created\r\nx-b: 1\r\nx-a: 2\r\nset-cookie: a=1\r\n" ..
                     "set-cookie: b=2\r\ncontent-length: 2\r\n\r\n42", out)
  end)

  it("passes lower-case header names and the body to the handler", function()
    local status, _, body = http.request("POST", base .. "/headers",
      {headers = {["X-Custom-Thing"] = "Value"}, body = "abc"})
    assert.are.equal(200, status)
    assert.are.equal("connection=close;content-length=3;host=127.0.0.1:" .. port ..
                     ";x-custom-thing=Value", body)
  end)

  it("answers 404 and HEAD as the handler says, HEAD without a body", function()
    assert.are.same({404, "not found\n"}, {(function()
      local s, _, b = http.request("GET", base .. "/nope") return s, b end)()})
    local s, h, b = http.request("HEAD", base .. "/hello")
    assert.are.same({200, "7", ""}, {s, h["content-length"], b})
  end)

  it("keeps an HTTP/1.1 connection alive: one process serves requests in turn", function()
    local sock = connect()
    local s1, h1, pid1 = http.request("GET", base .. "/pid", {socket = sock})
    local s2, _, pid2 = http.request("PUT", base .. "/echo", {socket = sock, body = "x"})
    local s3, _, pid3 = http.request("GET", base .. "/pid", {socket = sock})
    net.close(sock)
    assert.are.same({200, 200, 200}, {s1, s2, s3})
    assert.is_nil(h1.connection)
    assert.are.equal("x", pid2)
    assert.are.equal(pid1, pid3)
    assert.is_truthy(pid1:match("^<0%.%d+%.%d+>$"))
  end)

  it("closes an HTTP/1.0 connection after the response, unless keep-alive is asked", function()
    local out = exchange("GET /hello HTTP/1.0\r\n\r\n", true)
    assert.are.equal("HTTP/1.1 200 OK", status_line(out))
    assert.is_truthy(out:find("connection: close\r\n", 1, true))
    local sock = connect()
    net.send(sock, "GET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    local r = read_response(sock)
    assert.are.equal(200, r.status)
    net.send(sock, "GET /hello?again HTTP/1.0\r\n\r\n")
    assert.are.equal("hello again\n", read_response(sock).body)
    assert.are.same({"", "closed"}, {read_all(sock)})
    net.close(sock)
  end)

  it("closes after a response whose handler said connection: close", function()
    local sock = connect()
    net.send(sock, "GET /close HTTP/1.1\r\nHost: h\r\n\r\n")
    local r, rest = read_response(sock)
    assert.are.same({200, "bye", "close", ""}, {r.status, r.body, r.headers.connection, rest})
    assert.are.same({"", "closed"}, {read_all(sock)})
    net.close(sock)
  end)

  it("answers pipelined requests in order", function()
    local sock = connect()
    net.send(sock, "GET /hello?1 HTTP/1.1\r\nHost: h\r\n\r\n" ..
                   "POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\n\r\nbody" ..
                   "GET /slow HTTP/1.1\r\nHost: h\r\n\r\n" ..
                   "GET /hello?4 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
    local bodies, rest, r = {}, ""
    for _ = 1, 4 do
      r, rest = read_response(sock, rest)
      bodies[#bodies + 1] = r.status .. " " .. r.body
    end
    assert.are.same({"200 hello 1\n", "200 body", "200 slow", "200 hello 4\n"}, bodies)
    assert.are.same({"", "closed"}, {read_all(sock)})
    net.close(sock)
  end)

  it("decodes a chunked request body sent in pieces", function()
    local sock = connect()
    net.send(sock, "POST /echo HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel")
    P.sleep(30)
    net.send(sock, "lo\r\n7;ext=1\r\n, world\r\n")
    P.sleep(30)
    net.send(sock, "0\r\nX-Trailer: t\r\n\r\n")
    local r = read_response(sock)
    net.close(sock)
    assert.are.same({200, "hello, world", "12"}, {r.status, r.body, r.headers["content-length"]})
  end)

  it("sends 100 Continue before reading a body the client holds back", function()
    local sock = connect()
    net.send(sock, "PUT /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n")
    local r, rest = read_response(sock)
    assert.are.same({100, "Continue", ""}, {r.status, r.reason, rest})
    net.send(sock, "abc")
    r = read_response(sock)
    net.close(sock)
    assert.are.same({200, "abc"}, {r.status, r.body})
  end)

  it("answers 400 to a malformed request and closes the connection", function()
    local out, err = exchange("GET / HTTP/1.1\r\nHost : h\r\n\r\n", true)
    assert.are.equal("closed", err)
    assert.are.equal("HTTP/1.1 400 Bad Request", status_line(out))
    assert.is_truthy(out:find("connection: close\r\ncontent-length: 12", 1, true)
                     or out:find("content-length: 12\r\n", 1, true))
    assert.are.equal("Bad Request\n", out:match("\r\n\r\n(.*)$"))
  end)

  it("answers 413 to a body past max_body_size, 431 to large headers, 505, 501", function()
    assert.are.equal("HTTP/1.1 413 Content Too Large", status_line(exchange(
      "POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 2000000\r\n\r\n", true)))
    assert.are.equal("HTTP/1.1 431 Request Header Fields Too Large", status_line(exchange(
      "GET / HTTP/1.1\r\nHost: h\r\nX: " .. string.rep("y", 9000) .. "\r\n\r\n", true)))
    assert.are.equal("HTTP/1.1 414 URI Too Long", status_line(exchange(
      "GET /" .. string.rep("y", 9000), true)))
    assert.are.equal("HTTP/1.1 505 HTTP Version Not Supported", status_line(exchange(
      "GET / HTTP/3.0\r\nHost: h\r\n\r\n", true)))
    assert.are.equal("HTTP/1.1 501 Not Implemented", status_line(exchange(
      "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", true)))
  end)

  it("answers 408 to a client too slow to send its request, then closes", function()
    local sock = connect()
    net.send(sock, "GET /hello HTTP/1.1\r\nHost: h\r\n")
    local t0 = P.monotonic()
    local out, err = read_all(sock)
    local dt = P.monotonic() - t0
    net.close(sock)
    assert.are.equal("closed", err)
    assert.are.equal("HTTP/1.1 408 Request Timeout", status_line(out))
    assert.is_true(dt >= 350 and dt < 3000, "after " .. dt .. " ms")
  end)

  it("answers 408 to a client that drips its request a byte at a time", function()
    local sock = connect()
    local t0 = P.monotonic()
    local request, out, err = "GET /hello HTTP/1.1\r\nHost: h\r\n\r\n", nil, nil
    for i = 1, #request do
      if not net.send(sock, request:sub(i, i)) then break end
      local data, e = net.recv(sock, 0, 100)
      if data or e ~= "timeout" then out, err = data, e break end
    end
    local rest, e2 = read_all(sock)
    out, err = (out or "") .. rest, err or e2
    local dt = P.monotonic() - t0
    net.close(sock)
    assert.are.equal("HTTP/1.1 408 Request Timeout", status_line(out))
    assert.is_true(dt >= 350 and dt < 3000, "after " .. dt .. " ms")
  end)

  it("answers 408 to a connection that sends nothing", function()
    local sock = connect()
    local out, err = read_all(sock)
    net.close(sock)
    assert.are.same({"HTTP/1.1 408 Request Timeout", "closed"}, {status_line(out), err})
  end)

  it("closes a kept-alive connection idle past idle_timeout without a word", function()
    local sock = connect()
    assert.are.equal(200, (http.request("GET", base .. "/hello", {socket = sock})))
    local t0 = P.monotonic()
    local out, err = read_all(sock)
    local dt = P.monotonic() - t0
    net.close(sock)
    assert.are.same({"", "closed"}, {out, err})
    assert.is_true(dt >= 250 and dt < 3000, "after " .. dt .. " ms")
  end)

  it("answers 500 when the handler raises; only that connection's process dies", function()
    local acceptor = supervisor.which_children(server)[1][2]
    local sock = connect()
    local _, _, pid = http.request("GET", base .. "/pid", {socket = sock})
    local conn = P.topid(pid)
    net.send(sock, "GET /boom HTTP/1.1\r\nHost: h\r\n\r\n")
    local out, err = read_all(sock)
    net.close(sock)
    assert.are.same({"HTTP/1.1 500 Internal Server Error", "closed"}, {status_line(out), err})
    assert.is_true(support.poll(1000, function() return not P.alive(conn) end))
    assert.are.equal(200, (http.request("GET", base .. "/hello")))
    assert.are.equal(acceptor, supervisor.which_children(server)[1][2])
  end)

  it("answers 500 when the handler returns something that is not a response", function()
    local status, _, body = http.request("GET", base .. "/bad")
    assert.are.same({500, "Internal Server Error\n"}, {status, body})
    assert.are.equal(200, (http.request("GET", base .. "/hello")))
  end)

  it("answers 500 rather than write a header value holding CR LF", function()
    local out = exchange("GET /inject HTTP/1.1\r\nHost: h\r\n\r\n", true)
    assert.are.equal("HTTP/1.1 500 Internal Server Error", status_line(out))
    assert.is_nil(out:find("evil", 1, true))
  end)

  it("serves 20 clients at once, each on its own connection", function()
    local me = P.self()
    for i = 1, 20 do
      P.spawn(function()
        local s, _, b = http.request("GET", base .. "/hello?" .. i)
        P.send(me, {"done", i, s, b})
      end)
    end
    local got = {}
    for _ = 1, 20 do
      local m = P.receive({"done", P.ANY, P.ANY, P.ANY}, 5000)
      assert.is_table(m)
      got[m[2]] = m[3] .. " " .. m[4]
    end
    for i = 1, 20 do assert.are.equal("200 hello " .. i .. "\n", got[i]) end
  end)

  it("survives random bytes: each gets a 400, then a good request still works", function()
    math.randomseed(20261121)
    for n = 1, 40 do
      local bytes = {}
      for i = 1, math.random(1, 300) do bytes[i] = string.char(math.random(0, 255)) end
      local out = exchange(table.concat(bytes))
      assert.are.equal("HTTP/1.1 400 Bad Request", status_line(out), "random input #" .. n)
    end
    assert.are.equal(200, (http.request("GET", base .. "/hello")))
  end)

  it("answers every mix of request fragments with a status line, never a crash", function()
    math.randomseed(99)
    local parts = {"GET ", "POST ", "/echo", "/hello?x", " HTTP/1.1", " HTTP/1.0", "\r\n",
                   "\n", "Host: h\r\n", "Content-Length: 3\r\n", "Content-Length: x\r\n",
                   "Transfer-Encoding: chunked\r\n", "3\r\nabc\r\n", "0\r\n\r\n", ": ",
                   "Expect: 100-continue\r\n", "Connection: close\r\n", "\0", " "}
    local seen = {}
    for n = 1, 60 do
      local bytes = {}
      for i = 1, math.random(2, 10) do bytes[i] = parts[math.random(#parts)] end
      bytes = table.concat(bytes)
      local out = exchange(bytes)
      if bytes:find("[^\r\n]") then
        local code = out:match("^HTTP/1%.1 (%d%d%d) ")
        assert.is_truthy(code, "input #" .. n .. " " .. string.format("%q", bytes) .. " got " ..
                         string.format("%q", out))
        seen[code] = true
      end
    end
    assert.is_true(seen["400"])
    assert.are.equal(200, (http.request("GET", base .. "/hello")))
  end)

  it("survives every truncation of a request: each gets a 400, then a good one works", function()
    local full = "POST /echo?q=1 HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n" ..
                 "4\r\nwiki\r\n0\r\n\r\n"
    for n = 1, #full - 1 do
      local prefix = full:sub(1, n)
      local out = exchange(prefix)
      assert.are.equal("HTTP/1.1 400 Bad Request", status_line(out), "prefix " .. n)
    end
    local out = exchange(full)
    assert.are.equal("HTTP/1.1 200 OK", status_line(out))
    assert.are.equal("wiki", out:match("\r\n\r\n(.*)$"))
  end)

  it("leaves no connection process behind once the clients are gone", function()
    assert.is_truthy(support.poll(2000, function()
      return #http.connections(server) == 0
    end))
  end)
end)

describe("http server options", function()
  it("refuses connections past max_connections by closing them", function()
    local sup, p = start({max_connections = 1})
    local url = "http://127.0.0.1:" .. p
    local s1 = assert(net.connect("127.0.0.1", p, {}, 2000))
    assert.are.equal(200, (http.request("GET", url .. "/hello", {socket = s1})))
    local s2 = assert(net.connect("127.0.0.1", p, {}, 2000))
    assert.are.same({nil, "closed"}, {net.recv(s2, 0, 2000)})
    net.close(s2)
    net.close(s1)
    P.sleep(50)
    assert.are.equal(200, (http.request("GET", url .. "/hello")))
    P.unlink(sup)
    P.exit(sup, "shutdown")
  end)

  it("gives nil, eaddrinuse for a port that is taken, and the caller lives on", function()
    local sup, p = start()
    assert.are.same({nil, "eaddrinuse"}, {http.start_link({port = p, handler = handler})})
    assert.are.equal(p, http.port(sup))
    P.unlink(sup)
    P.exit(sup, "shutdown")
  end)

  it("closes a connection whose client does not read its response past send_timeout", function()
    local size = 16 * 1024 * 1024
    local sup, p = start({send_timeout = 300,
                          handler = function() return 200, nil, string.rep("x", size) end})
    local sock = assert(net.connect("127.0.0.1", p, {recbuf = 4096}, 2000))
    net.send(sock, "GET / HTTP/1.1\r\nHost: h\r\n\r\n")
    assert.is_true(support.poll(2000, function() return #http.connections(sup) == 1 end))
    local t0 = P.monotonic()
    assert.is_true(support.poll(5000, function() return #http.connections(sup) == 0 end))
    local dt = P.monotonic() - t0
    assert.is_true(dt < 3000, "after " .. dt .. " ms")
    local data = net.recv(sock, 0, 2000)            -- the start of what was sent
    net.close(sock)
    assert.are.equal("HTTP/1.1 200 OK\r\n", data:sub(1, 17))
    P.unlink(sup)
    P.exit(sup, "shutdown")
  end)

  it("takes the handler as \"mod.fn\"", function()
    local sup, p = start({handler = "http_handlers.greet"})
    local status, headers, body = http.request("GET", "http://127.0.0.1:" .. p .. "/x")
    assert.are.same({200, "text/plain", "greetings from /x"},
                    {status, headers["content-type"], body})
    P.unlink(sup)
    P.exit(sup, "shutdown")
  end)

  it("raises for a missing handler", function()
    assert.has_error(function() http.start_link({port = 0}) end,
      "bad argument #1 to 'start_link' (handler must be a function or \"mod.fn\")")
  end)
end)

describe("http server supervision", function()
  it("restarts a killed acceptor on the same port; open connections live on", function()
    local sup, p = start()
    local url = "http://127.0.0.1:" .. p
    local sock = assert(net.connect("127.0.0.1", p, {}, 2000))
    local _, _, pid = http.request("GET", url .. "/pid", {socket = sock})
    local acceptor = supervisor.which_children(sup)[1][2]
    P.exit(acceptor, "kill")
    local new = support.poll(2000, function()
      local a = supervisor.which_children(sup)[1][2]
      return a ~= acceptor and P.is_pid(a) and a
    end)
    assert.is_truthy(new)
    assert.are.same({200, pid}, {(function()
      local s, _, b = http.request("GET", url .. "/pid", {socket = sock}) return s, b end)()})
    net.close(sock)
    assert.are.equal(200, (http.request("GET", url .. "/hello")))
    assert.are.equal(p, http.port(sup))
    P.unlink(sup)
    P.exit(sup, "shutdown")
  end)

  it("stops its connections when the server stops", function()
    local sup, p = start()
    local sock = assert(net.connect("127.0.0.1", p, {}, 2000))
    local _, _, pid = http.request("GET", "http://127.0.0.1:" .. p .. "/pid", {socket = sock})
    local conn = P.topid(pid)
    assert.are.same({conn}, http.connections(sup))
    P.unlink(sup)
    P.exit(sup, "shutdown")
    assert.is_true(support.poll(2000, function() return not P.alive(conn) end))
    assert.are.same({"", "closed"}, {read_all(sock)})
    net.close(sock)
    assert.is_nil(net.connect("127.0.0.1", p, {}, 1000))
  end)
end)

describe("http.request", function()
  it("gives nil, econnrefused when nothing listens, and nil, bad_url for a bad url", function()
    local l = assert(net.listen(0))
    local _, p = net.sockname(l)
    net.close(l)
    assert.are.same({nil, "econnrefused"}, {http.request("GET", "http://127.0.0.1:" .. p .. "/")})
    assert.are.same({nil, "bad_url"}, {http.request("GET", "ftp://x/")})
  end)
end)
