-- examples_net_spec.lua — smoke tests of the network examples: each is started with
-- ./moonbeam as a subprocess on a free loopback port, talked to, and stopped. The echo
-- server also takes 1,000 connections at once.
local support = dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "support.lua")
local net = require "net"
local http = require "http"
local P = process

local function free_port()
  local l = assert(net.listen(0))
  local _, port = net.sockname(l)
  net.close(l)
  return port
end

--- Starts `moonbeam examples/<script> <port>` in the background (killed after 120 s at
-- the latest) and waits until it accepts connections. Returns a handle for stop().
local function start(script, port)
  local out = os.tmpname()
  local cmd = string.format("cd /tmp && { timeout -s KILL 120 %s %s %d >%s 2>&1 & echo $! >%s.pid; }",
    support.shell_quote(support.moonbeam),
    support.shell_quote(support.dir .. "/../examples/" .. script), port,
    support.shell_quote(out), support.shell_quote(out))
  assert(os.execute(cmd))
  local h = {out = out, pid = assert(tonumber(support.read_file(out .. ".pid")))}
  local up = support.poll(10000, function()
    local s = net.connect("127.0.0.1", port, {}, 500)
    if s then net.close(s) end
    return s ~= nil
  end)
  assert(up, "the example did not start: " .. support.read_file(out))
  return h
end

--- Stops the example; returns what it printed (stdout and stderr).
local function stop(h)
  os.execute("kill " .. h.pid .. " 2>/dev/null")
  P.sleep(50)
  local text = support.read_file(h.out)
  os.remove(h.out)
  os.remove(h.out .. ".pid")
  return text
end

--- Reads lines from a passive socket until `n` lines came (or 2 s passed).
local function lines(sock, n)
  local got, buf = {}, ""
  local deadline = P.monotonic() + 2000
  while #got < n do
    local wait = deadline - P.monotonic()
    if wait <= 0 then break end
    local data = net.recv(sock, 0, math.floor(wait) + 1)
    if not data then break end
    buf = buf .. data
    for line in buf:gmatch("([^\n]*)\n") do got[#got + 1] = line end
    buf = buf:match("[^\n]*$")
  end
  return got
end

describe("examples/echo.lua", function()
  local port, h

  setup(function()
    port = free_port()
    h = start("echo.lua", port)
  end)

  teardown(function()
    local out = stop(h)
    assert.is_truthy(out:find("echo: listening on 127.0.0.1:" .. port, 1, true), out)
  end)

  it("sends every line back, whole, on one connection", function()
    local s = assert(net.connect("127.0.0.1", port, {}, 2000))
    assert(net.send(s, "hello\nworld\n"))
    assert(net.send(s, "split "))
    P.sleep(20)
    assert(net.send(s, "line\n"))
    assert.are.same({"hello", "world", "split line"}, lines(s, 3))
    net.close(s)
  end)

  it("serves 1,000 connections open at the same time", function()
    local me, n = P.self(), 1000
    local t0 = P.monotonic()
    local pids = {}
    for i = 1, n do
      pids[i] = P.spawn(function()
        local s, err = net.connect("127.0.0.1", port, {}, 20000)
        if not s then P.send(me, {"client", i, "connect: " .. tostring(err)}) return end
        P.send(me, {"connected", i})
        P.receive({"go"}, 60000)              -- hold the connection until all are open
        local ok, e = net.send(s, "client " .. i .. "\n")
        local reply
        if ok then reply, e = net.recv(s, #("client " .. i .. "\n"), 50000) end
        net.close(s)
        P.send(me, {"client", i, reply or ((ok and "recv: " or "send: ") .. tostring(e))})
      end)
    end
    local clients = {}
    for _ = 1, n do
      local m = P.receive(P.any_of({"connected", P.ANY}, {"client", P.ANY, P.ANY}), 30000)
      assert.is_table(m, "a client neither connected nor failed within 30 s")
      assert.are.equal("connected", m[1], m[3])
      clients[#clients + 1] = m
    end
    for _, pid in ipairs(pids) do P.send(pid, {"go"}) end
    local wrong = {}
    for _ = 1, n do
      local m = P.receive({"client", P.ANY, P.ANY}, 60000)
      assert.is_table(m, "a client did not finish within 60 s")
      if m[3] ~= "client " .. m[2] .. "\n" then wrong[#wrong + 1] = m[2] .. ": " .. m[3] end
    end
    assert.are.same({}, wrong)
    -- (about 2 s here; ThreadSanitizer's build needs ~30 s to spawn the 1,000 processes)
    assert.is_true(P.monotonic() - t0 < 120000)
    local s = assert(net.connect("127.0.0.1", port, {}, 2000))
    net.send(s, "after\n")
    assert.are.same({"after"}, lines(s, 1))
    net.close(s)
  end)
end)

describe("examples/chat.lua", function()
  local port, h

  setup(function()
    port = free_port()
    h = start("chat.lua", port)
  end)

  teardown(function() stop(h) end)

  local function member(nick, room)
    local s = assert(net.connect("127.0.0.1", port, {}, 2000))
    local hello = lines(s, 2)
    assert.is_truthy(hello[1]:match("^%* welcome, guest%d+$"), hello[1])
    net.send(s, "/nick " .. nick .. "\n")
    assert.are.same({"* you are " .. nick}, lines(s, 1))
    if room then
      net.send(s, "/join " .. room .. "\n")
      local joined = lines(s, 1)[1]
      assert.is_truthy(joined:find("* you joined #" .. room, 1, true), joined)
    end
    return s
  end

  it("broadcasts a line to the others in the room, not to other rooms", function()
    local ada = member("ada", "lobby")
    local bob = member("bob", "lobby")
    assert.are.same({"* bob joined #lobby"}, lines(ada, 1))
    local cy = member("cy", "attic")
    net.send(ada, "hello all\n")
    assert.are.same({"ada: hello all"}, lines(bob, 1))
    assert.are.same({}, lines(cy, 1))
    net.send(ada, "/who\n")
    assert.are.same({"* in #lobby: ada, bob"}, lines(ada, 1))
    for _, s in ipairs({ada, bob, cy}) do net.close(s) end
  end)

  it("drops a member whose connection closes, and tells the others", function()
    local ada = member("ada2", "den")
    local bob = member("bob2", "den")
    assert.are.same({"* bob2 joined #den"}, lines(ada, 1))
    net.close(bob)
    assert.are.same({"* bob2 left #den"}, lines(ada, 1))
    net.send(ada, "/who\n")
    assert.are.same({"* in #den: ada2"}, lines(ada, 1))
    net.send(ada, "/join hall\n")
    assert.are.same({"* you joined #hall (ada2)"}, lines(ada, 1))
    net.close(ada)
  end)

  it("asks a member with no room to join one", function()
    local s = member("dee")
    net.send(s, "anyone?\n")
    assert.are.same({"* join a room first: /join name"}, lines(s, 1))
    net.close(s)
  end)
end)

describe("examples/http_kv.lua", function()
  local port, h, base

  setup(function()
    port = free_port()
    h = start("http_kv.lua", port)
    base = "http://127.0.0.1:" .. port .. "/kv/"
  end)

  teardown(function()
    local out = stop(h)
    assert.is_truthy(out:find("http_kv: listening on http://127.0.0.1:" .. port .. "/kv/", 1, true), out)
  end)

  local function req(method, key, body)
    local status, _, b = http.request(method, base .. key, {body = body})
    return {status, b}
  end

  it("stores, reads, replaces and deletes keys", function()
    assert.are.same({404, "no such key\n"}, req("GET", "color"))
    assert.are.same({201, ""}, req("PUT", "color", "blue"))
    assert.are.same({200, "blue"}, req("GET", "color"))
    assert.are.same({204, ""}, req("PUT", "color", "red"))
    assert.are.same({200, "red"}, req("GET", "color"))
    assert.are.same({201, ""}, req("PUT", "a%20b", "spaced"))
    assert.are.same({200, "a b\ncolor\n"}, req("GET", ""))
    assert.are.same({204, ""}, req("DELETE", "color"))
    assert.are.same({404, "no such key\n"}, req("DELETE", "color"))
    assert.are.same({404, "no such key\n"}, req("GET", "color"))
    assert.are.same({405, "method not allowed\n"}, req("POST", "color", "x"))
  end)

  it("keeps a binary value intact over a kept-alive connection", function()
    local value = {}
    for i = 0, 255 do value[#value + 1] = string.char(i) end
    value = table.concat(value):rep(40)
    local s = assert(net.connect("127.0.0.1", port, {}, 2000))
    assert.are.equal(201, (http.request("PUT", base .. "bin", {body = value, socket = s})))
    local status, headers, body = http.request("GET", base .. "bin", {socket = s})
    net.close(s)
    assert.are.same({200, "10240", "application/octet-stream"},
                    {status, headers["content-length"], headers["content-type"]})
    assert.is_true(body == value)
  end)
end)
