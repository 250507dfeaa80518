-- tests/net_spec.lua — the net module: TCP listen/accept/connect/recv/send/close, errors and
-- timeouts, ownership and owner death, sockets in messages, active mode (true, once, N),
-- packet framing (line, 1/2/4), UDP, and a thousand connections at once.

local P = require "process"
local net = require "net"
local ANY = P.ANY

local spawned, opened

local function spawn(f, ...)
  local pid = P.spawn(f, ...)
  spawned[#spawned + 1] = pid
  return pid
end

-- Remember a socket so that after_each closes it.
local function keep(s)
  if s then opened[#opened + 1] = s end
  return s
end

local function listen(opts)
  local ls = keep(assert(net.listen(0, opts)))
  local _, port = net.sockname(ls)
  return ls, port
end

-- A connected pair, both ends owned by the caller: client, server.
local function pair(copts, lopts)
  local ls, port = listen(lopts)
  local c = keep(assert(net.connect("127.0.0.1", port, copts, 2000)))
  local s = keep(assert(net.accept(ls, 2000)))
  return c, s, ls
end

local function mailbox_empty()
  return P.receive(nil, 0) == nil
end

local function flush()
  while P.receive(nil, 0) ~= nil do end
end

local function raises(f, text)
  local ok, err = pcall(f)
  assert.is_false(ok)
  assert.is_truthy(tostring(err):find(text, 1, true), "got: " .. tostring(err))
end

before_each(function()
  spawned, opened = {}, {}
  flush()
end)

after_each(function()
  for _, pid in ipairs(spawned) do P.exit(pid, "kill") end
  for _, s in ipairs(opened) do net.close(s) end
  flush()
end)

describe("net: TCP basics", function()
  it("listens on a free port, connects, and echoes both ways", function()
    local c, s = pair()
    assert.is_true(net.send(c, "hello"))
    assert.equal("hello", net.recv(s, 0, 1000))
    assert.is_true(s:send("world"))
    assert.equal("world", c:recv(0, 1000))
    local cip, cport = net.sockname(c)
    local sip, sport = net.peername(s)
    assert.equal("127.0.0.1", cip)
    assert.equal(cip, sip)
    assert.equal(cport, sport)
  end)

  it("connects by name (localhost) and to a server in another process", function()
    local ls, port = listen()
    local me = P.self()
    spawn(function()
      local s = assert(net.accept(ls, 2000))
      local line = net.recv(s, 0, 2000)
      net.send(s, "echo:" .. line)
      P.send(me, "served")
      net.recv(s, 0, 2000)
    end)
    local c = keep(assert(net.connect("localhost", port, nil, 2000)))
    net.send(c, "x")
    assert.equal("echo:x", net.recv(c, 0, 2000))
    assert.equal("served", P.receive(nil, 2000))
  end)

  it("recv(n) returns exactly n bytes, gathered over several sends", function()
    local c, s = pair()
    net.send(c, "abc")
    net.send(c, "defgh")
    assert.equal("abcd", net.recv(s, 4, 1000))
    assert.equal("efgh", net.recv(s, 4, 1000))
  end)

  it("sends a table of strings as one piece of data", function()
    local c, s = pair()
    assert.is_true(net.send(c, {"ab", "cd", "ef"}))
    assert.equal("abcdef", net.recv(s, 6, 1000))
  end)

  it("moves a large buffer, blocking the sender only while the kernel buffer is full", function()
    local c, s = pair()
    local big = string.rep("0123456789abcdef", 256 * 1024)   -- 4 MiB
    local me = P.self()
    net.controlling_process(s, spawn(function()
      local sock = P.receive(nil, 2000)
      local got = assert(net.recv(sock, #big, 10000))
      P.send(me, {#got, got == big})
    end))
    local pid = spawned[#spawned]
    P.send(pid, s)
    assert.is_true(net.send(c, big))
    local r = P.receive(nil, 10000)
    assert.same({#big, true}, r)
  end)

  it("works over IPv6 loopback (where the machine has it)", function()
    local ls, err = net.listen(0, {ip = "::1"})
    if not ls then
      assert.is_truthy(err == "eaddrnotavail" or err == "eafnosupport", err)
      return
    end
    keep(ls)
    local _, port = net.sockname(ls)
    local c = keep(assert(net.connect("::1", port, nil, 2000)))
    local s = keep(assert(net.accept(ls, 2000)))
    net.send(c, "six")
    assert.equal("six", net.recv(s, 0, 1000))
    assert.equal("::1", (net.peername(s)))
  end)

  it("reports the reasons: econnrefused, eaddrinuse, nxdomain", function()
    local ls, port = listen()
    net.close(ls)
    assert.same({nil, "econnrefused"}, {net.connect("127.0.0.1", port, nil, 2000)})
    local ls2, port2 = listen()
    assert.same({nil, "eaddrinuse"}, {net.listen(port2)})
    assert.same({nil, "nxdomain"}, {net.connect("no-such-host.invalid", 80, nil, 5000)})
    assert.same({nil, "eaddrnotavail"}, {net.listen(0, {ip = "192.0.2.1"})})
    net.close(ls2)
  end)

  it("tells a peer's close as closed, and a peer's reset as econnreset", function()
    local c, s = pair()
    net.send(c, "last")
    net.close(c)
    assert.equal("last", net.recv(s, 0, 1000))
    assert.same({nil, "closed"}, {net.recv(s, 0, 1000)})
    assert.same({nil, "closed"}, {net.recv(s, 0, 1000)})

    local c2, s2 = pair()
    assert.is_true(net.setopts(c2, {linger = 0}))
    net.close(c2)   -- with linger 0 the kernel sends a reset
    assert.same({nil, "econnreset"}, {net.recv(s2, 0, 1000)})
    assert.same({nil, "closed"}, {net.send(s2, "x")})
  end)

  it("send and recv after close give closed; closing twice is fine", function()
    local c = pair()
    assert.is_true(net.close(c))
    assert.is_true(net.close(c))
    assert.same({nil, "closed"}, {net.send(c, "x")})
    assert.same({nil, "closed"}, {net.recv(c, 0, 100)})
    assert.same({nil, "closed"}, {net.peername(c)})
    assert.same({nil, "closed"}, {net.setopts(c, {active = true})})
  end)

  it("shutdown(write) ends the peer's reading while the other way stays open", function()
    local c, s = pair()
    net.send(c, "bye")
    assert.is_true(net.shutdown(c, "write"))
    assert.equal("bye", net.recv(s, 0, 1000))
    assert.same({nil, "closed"}, {net.recv(s, 0, 1000)})
    assert.is_true(net.send(s, "still here"))
    assert.equal("still here", net.recv(c, 0, 1000))
  end)

  it("sets and reads options; accepted sockets inherit the listener's", function()
    local c, s = pair({nodelay = true, keepalive = true}, {packet = 2, nodelay = true})
    local o = net.getopts(c, {"nodelay", "keepalive", "active", "packet"})
    assert.same({nodelay = true, keepalive = true, active = false, packet = "raw"}, o)
    o = net.getopts(s, {"nodelay", "packet", "packet_size"})
    assert.same({nodelay = true, packet = 2, packet_size = 64 * 1024 * 1024}, o)
    assert.is_true(net.setopts(c, {recbuf = 65536, sndbuf = 65536}))
    o = net.getopts(c, {"recbuf", "sndbuf"})
    assert.is_true(o.recbuf >= 65536 and o.sndbuf >= 65536)
  end)

  it("lists the caller's sockets", function()
    local c, s, ls = pair()
    local mine = net.sockets()
    assert.same({ls, c, s}, mine)
    net.close(c)
    assert.same({ls, s}, net.sockets())
  end)
end)

describe("net: timeouts", function()
  it("accept, recv and connect time out with timeout, leaving no message behind", function()
    local ls = listen()
    local t0 = P.monotonic()
    assert.same({nil, "timeout"}, {net.accept(ls, 100)})
    local dt = P.monotonic() - t0
    assert.is_true(dt >= 90 and dt < 2000, dt)
    local c, s = pair()
    assert.same({nil, "timeout"}, {net.recv(s, 0, 50)})
    assert.same({nil, "timeout"}, {net.recv(s, 0, 0)})
    -- data that comes after a timed-out recv is still there for the next one
    net.send(c, "late")
    assert.equal("late", net.recv(s, 0, 1000))
    assert.is_true(mailbox_empty())
  end)

  it("recv with tiny timeouts racing arriving data loses nothing and leaves no message", function()
    local c, s = pair()
    local pid = spawn(function()
      local sock = P.receive()
      for i = 1, 200 do
        net.send(sock, string.format("%03d", i))
        if i % 3 == 0 then P.sleep(1) end
      end
      P.receive()
    end)
    net.controlling_process(c, pid)
    P.send(pid, c)
    local got, timeouts = {}, 0
    while #table.concat(got) < 600 do
      local d, err = net.recv(s, 0, 1)
      if d then got[#got + 1] = d
      else
        assert.equal("timeout", err)
        timeouts = timeouts + 1
      end
    end
    local want = {}
    for i = 1, 200 do want[i] = string.format("%03d", i) end
    assert.equal(table.concat(want), table.concat(got))
    P.sleep(20)
    assert.is_true(mailbox_empty())
  end)

  it("a send to a peer that never reads times out", function()
    local c = pair({sndbuf = 65536})
    local big = string.rep("x", 32 * 1024 * 1024)
    assert.same({nil, "timeout"}, {net.send(c, big, 200)})
    assert.is_true(mailbox_empty())
  end)

  it("a timeout of 0 looks once; nil and \"infinity\" wait", function()
    local c, s = pair()
    net.send(c, "now")
    P.sleep(20)
    assert.equal("now", net.recv(s, 0, 0))
    local pid = spawn(function()
      local sock = P.receive()
      P.sleep(50)
      net.send(sock, "later")
      P.receive()
    end)
    net.controlling_process(c, pid)
    P.send(pid, c)
    assert.equal("later", net.recv(s, 0, "infinity"))
    P.send(pid, "done")
  end)

  it("a blocked recv blocks only its own process", function()
    local c, s = pair()
    local me = P.self()
    local pid = spawn(function()
      local n = 0
      while true do
        local m = P.receive(nil, 5000)
        if m == "stop" then P.send(me, n) return end
        n = n + 1
      end
    end)
    spawn(function()
      for i = 1, 50 do P.send(pid, i) P.sleep(1) end
      P.send(pid, "stop")
    end)
    local data = net.recv(s, 0, 300)
    assert.is_nil(data)
    assert.equal(50, P.receive(function(m) return m == 50 end, 5000))
    net.close(c)
  end)
end)

describe("net: bad arguments raise", function()
  it("names the function and the argument", function()
    raises(function() net.listen("x") end, "bad argument #1 to 'net.listen'")
    raises(function() net.listen(0, {foo = 1}) end,
      "bad argument #2 to 'net.listen' (unknown option 'foo')")
    raises(function() net.listen(0, {active = "twice"}) end,
      "bad argument #2 to 'net.listen' (bad value for option 'active': twice)")
    raises(function() net.listen(70000) end, "bad argument #1 to 'net.listen' (port")
    raises(function() net.recv("sock") end,
      "bad argument #1 to 'net.recv' (socket expected, got string)")
    local c = pair()
    raises(function() net.recv(c, 0, -1) end,
      "bad argument #3 to 'net.recv' (timeout must not be negative)")
    raises(function() net.recv(c, -2) end, "bad argument #2 to 'net.recv'")
    raises(function() net.send(c, 42) end,
      "bad argument #2 to 'net.send' (string expected, got number)")
    raises(function() net.shutdown(c, "sideways") end, "bad argument #2 to 'net.shutdown'")
    raises(function() net.connect(1, 2) end, "bad argument #1 to 'net.connect'")
    raises(function() net.connect("127.0.0.1", 0) end, "bad argument #2 to 'net.connect'")
    raises(function() net.controlling_process(c, "me") end,
      "bad argument #2 to 'net.controlling_process' (pid expected, got string)")
    raises(function() net.getopts(c, {"colour"}) end,
      "bad argument #2 to 'net.getopts' (unknown option 'colour')")
    raises(function() net.setopts(c, {active = 40000}) end,
      "bad argument #2 to 'net.setopts' (bad value for option 'active': 40000)")
  end)

  it("recv with a length under packet framing, or on a listener, is einval", function()
    local c, s, ls = pair(nil, {packet = 2})
    assert.same({nil, "einval"}, {net.recv(s, 3, 100)})
    assert.same({nil, "einval"}, {net.recv(ls, 0, 100)})
    assert.same({nil, "einval"}, {net.accept(c, 100)})
  end)
end)

describe("net: ownership", function()
  it("only the owner may recv, send, close or set options", function()
    local c, s = pair()
    local me = P.self()
    spawn(function()
      P.send(me, {net.recv(s, 0, 100)})
      P.send(me, {net.send(s, "x")})
      P.send(me, {net.close(s)})
      P.send(me, {net.setopts(s, {active = true})})
      P.send(me, {net.controlling_process(s, P.self())})
      P.send(me, {net.peername(s)})
    end)
    for _ = 1, 5 do assert.same({nil, "not_owner"}, P.receive(nil, 2000)) end
    local r = P.receive(nil, 2000)
    assert.equal("127.0.0.1", r[1])
    net.send(c, "still mine")
    assert.equal("still mine", net.recv(s, 0, 1000))
  end)

  it("controlling_process hands the socket over", function()
    local c, s = pair()
    local me = P.self()
    local pid = spawn(function()
      local sock = P.receive(nil, 2000)
      P.send(me, "ready")
      P.send(me, {net.recv(sock, 0, 2000)})
    end)
    assert.is_true(net.controlling_process(s, pid))
    P.send(pid, s)
    assert.equal("ready", P.receive(nil, 2000))
    assert.same({nil, "not_owner"}, {net.send(s, "x")})
    net.send(c, "for you")
    assert.same({"for you"}, P.receive(nil, 2000))
  end)

  it("controlling_process to a dead process is noproc", function()
    local c = pair()
    local pid = P.spawn(function() end)
    P.sleep(20)
    assert.same({nil, "noproc"}, {net.controlling_process(c, pid)})
    assert.is_true(net.send(c, "still mine"))
  end)

  it("the owner's death closes its sockets", function()
    local ls, port = listen()
    local me = P.self()
    local pid = spawn(function()
      local c = assert(net.connect("127.0.0.1", port, nil, 2000))
      P.send(me, c)
      P.receive()
    end)
    local c = P.receive(nil, 2000)
    local s = keep(assert(net.accept(ls, 2000)))
    assert.is_true(net.is_socket(c))
    P.exit(pid, "kill")
    assert.same({nil, "closed"}, {net.recv(s, 0, 2000)})
    assert.same({nil, "closed"}, {net.peername(c)})
  end)

  it("a process blocked in accept on a listener that closes gets closed", function()
    local ls = listen()
    local me = P.self()
    spawn(function() P.send(me, {net.accept(ls, 5000)}) end)
    P.sleep(50)
    net.close(ls)
    assert.same({nil, "closed"}, P.receive(nil, 2000))
  end)

  it("any process may accept on a listener; the new socket is the acceptor's", function()
    local ls, port = listen()
    local me = P.self()
    spawn(function()
      local s = assert(net.accept(ls, 2000))
      P.send(me, {net.recv(s, 0, 2000)})
    end)
    local c = keep(assert(net.connect("127.0.0.1", port, nil, 2000)))
    net.send(c, "hi")
    assert.same({"hi"}, P.receive(nil, 2000))
  end)

  it("a process killed while blocked in recv dies cleanly and its socket closes", function()
    local ls, port = listen()
    local pid = spawn(function()
      local c = assert(net.connect("127.0.0.1", port, nil, 2000))
      net.recv(c, 0)
    end)
    local s = keep(assert(net.accept(ls, 2000)))
    P.sleep(50)
    P.exit(pid, "kill")
    assert.same({nil, "closed"}, {net.recv(s, 0, 2000)})
  end)
end)

describe("net: sockets in messages", function()
  it("a socket travels as a handle equal to itself, and prints as #Port", function()
    local c = pair()
    local me = P.self()
    spawn(function()
      local m = P.receive(nil, 2000)
      P.send(me, {m.sock, m.again, net.is_socket(m.sock), m.sock == m.again, tostring(m.sock)})
    end)
    P.send(spawned[1], {sock = c, again = c})
    local r = P.receive(nil, 2000)
    assert.equal(c, r[1])
    assert.is_true(rawequal(c, r[1]))   -- one handle per socket in a process
    assert.is_true(r[3])
    assert.is_true(r[4])
    assert.truthy(r[5]:match("^#Port<0%.%d+>$"))
    assert.equal(tostring(c), r[5])
    local t = {[c] = "key"}
    assert.equal("key", t[r[1]])
  end)

  it("a socket passed to spawn arrives as a handle in the child", function()
    local c = pair()
    local me = P.self()
    spawn(function(sock) P.send(me, {sock, net.is_socket(sock)}) end, c)
    assert.same({c, true}, P.receive(nil, 2000))
  end)

  it("a closure holding a socket as an upvalue can be sent", function()
    local c, s = pair()
    local me = P.self()
    local f = function() return c end
    spawn(function() P.send(me, P.receive(nil, 2000)()) end)
    P.send(spawned[1], f)
    assert.equal(c, P.receive(nil, 2000))
    assert.is_not_nil(s)
  end)
end)

describe("net: active mode", function()
  it("active = true delivers data, then tcp_closed", function()
    local c, s = pair()
    assert.is_true(net.setopts(s, {active = true}))
    net.send(c, "one")
    assert.same({"tcp", s, "one"}, P.receive({"tcp", s}, 2000))
    net.close(c)
    assert.same({"tcp_closed", s}, P.receive({"tcp_closed", s}, 2000))
    assert.same({nil, "einval"}, {net.recv(s, 0, 100)})
  end)

  it("active = \"once\" delivers one message and turns passive", function()
    local c, s = pair(nil, {packet = "line"})
    net.send(c, "a\nb\n")
    assert.is_true(net.setopts(s, {active = "once"}))
    assert.same({"tcp", s, "a\n"}, P.receive(nil, 2000))
    assert.is_nil(P.receive(nil, 100))
    assert.same({active = false}, net.getopts(s, {"active"}))
    net.setopts(s, {active = "once"})
    assert.same({"tcp", s, "b\n"}, P.receive(nil, 2000))
  end)

  it("active = N counts down and sends tcp_passive", function()
    local c, s = pair(nil, {packet = 1})
    net.setopts(c, {packet = 1})
    net.setopts(s, {active = 2})
    assert.same({active = 2}, net.getopts(s, {"active"}))
    net.setopts(s, {active = 1})   -- adds to the counter
    assert.same({active = 3}, net.getopts(s, {"active"}))
    for i = 1, 5 do net.send(c, "m" .. i) end
    for i = 1, 3 do assert.same({"tcp", s, "m" .. i}, P.receive(nil, 2000)) end
    assert.same({"tcp_passive", s}, P.receive(nil, 2000))
    assert.same({active = false}, net.getopts(s, {"active"}))
    assert.equal("m4", net.recv(s, 0, 1000))
    net.setopts(s, {active = -5})   -- at or below 0: passive at once
    assert.same({"tcp_passive", s}, P.receive(nil, 2000))
  end)

  it("the owner of an active listener's accepted socket gets its data", function()
    local ls, port = listen({active = true})
    local c = keep(assert(net.connect("127.0.0.1", port, nil, 2000)))
    local s = keep(assert(net.accept(ls, 2000)))
    net.send(c, "hey")
    assert.same({"tcp", s, "hey"}, P.receive(nil, 2000))
  end)

  it("controlling_process passes queued active messages on, in order", function()
    local c, s = pair(nil, {packet = "line", active = true})
    net.send(c, "1\n2\n3\n")
    P.sleep(100)   -- the three are in our mailbox now
    local me = P.self()
    local pid = spawn(function()
      local got = {}
      for i = 1, 4 do
        local m = P.receive(nil, 2000)
        got[i] = m and m[3]
      end
      P.send(me, got)
    end)
    assert.is_true(net.controlling_process(s, pid))
    net.send(c, "4\n")
    assert.same({"1\n", "2\n", "3\n", "4\n"}, P.receive(nil, 3000))
    assert.is_true(mailbox_empty())
  end)

  it("an active connect gets the server's greeting as a message", function()
    local ls, port = listen()
    spawn(function()
      local s = assert(net.accept(ls, 2000))
      net.send(s, "welcome")
      net.recv(s, 0, 2000)
    end)
    local c = keep(assert(net.connect("127.0.0.1", port, {active = true}, 2000)))
    assert.same({"tcp", c, "welcome"}, P.receive(nil, 2000))
  end)
end)

describe("net: framing", function()
  it("packet line: one line per recv, the last unterminated line at close", function()
    local c, s = pair(nil, {packet = "line"})
    net.send(c, "first\nsec")
    net.send(c, "ond\nthird")
    assert.equal("first\n", net.recv(s, 0, 1000))
    assert.equal("second\n", net.recv(s, 0, 1000))
    net.close(c)
    assert.equal("third", net.recv(s, 0, 1000))
    assert.same({nil, "closed"}, {net.recv(s, 0, 1000)})
  end)

  it("a line longer than packet_size is emsgsize (passive) or tcp_error (active)", function()
    local c, s = pair(nil, {packet = "line", packet_size = 10})
    net.send(c, string.rep("x", 20) .. "\n")
    assert.same({nil, "emsgsize"}, {net.recv(s, 0, 1000)})
    local c2, s2 = pair(nil, {packet = "line", packet_size = 10, active = true})
    net.send(c2, string.rep("y", 20) .. "\n")
    assert.same({"tcp_error", s2, "emsgsize"}, P.receive(nil, 2000))
    assert.same({"tcp_closed", s2}, P.receive(nil, 2000))
  end)

  for _, n in ipairs({1, 2, 4}) do
    it("packet " .. n .. ": a length prefix on the wire, one packet per recv", function()
      local c, s = pair({packet = n})
      local raw_c = c
      assert.is_true(net.send(raw_c, "hello"))
      assert.is_true(net.send(raw_c, ""))
      assert.is_true(net.send(raw_c, string.rep("z", 200)))
      -- the server end is raw: look at the bytes
      local want = string.pack(">s" .. n, "hello") .. string.pack(">s" .. n, "") ..
                   string.pack(">s" .. n, string.rep("z", 200))
      assert.equal(want, net.recv(s, #want, 1000))
      -- and framed on both ends
      net.setopts(s, {packet = n})
      net.send(s, "back")
      net.send(s, "again")
      assert.equal("back", net.recv(c, 0, 1000))
      assert.equal("again", net.recv(c, 0, 1000))
    end)
  end

  it("packet 1 refuses data longer than 255 bytes", function()
    local c = pair({packet = 1})
    assert.same({nil, "emsgsize"}, {net.send(c, string.rep("x", 256))})
  end)

  it("a length-framed packet over packet_size is emsgsize", function()
    local c, s = pair({packet = 4}, {packet = 4, packet_size = 100})
    net.send(c, string.rep("x", 101))
    assert.same({nil, "emsgsize"}, {net.recv(s, 0, 1000)})
  end)
end)

describe("net: UDP", function()
  it("sends and receives datagrams with their source", function()
    local a = keep(assert(net.udp_open(0)))
    local b = keep(assert(net.udp_open(0)))
    local _, aport = net.sockname(a)
    local _, bport = net.sockname(b)
    assert.is_true(net.sendto(a, "127.0.0.1", bport, "ping"))
    assert.same({"ping", "127.0.0.1", aport}, {net.recvfrom(b, 1000)})
    assert.same({nil, "timeout"}, {net.recvfrom(b, 50)})
    assert.is_true(mailbox_empty())
  end)

  it("active UDP delivers {\"udp\", sock, ip, port, data}", function()
    local a = keep(assert(net.udp_open(0)))
    local b = keep(assert(net.udp_open(0, {active = true})))
    local _, aport = net.sockname(a)
    local _, bport = net.sockname(b)
    net.sendto(a, "localhost", bport, "d1")
    net.sendto(a, "127.0.0.1", bport, "d2")
    assert.same({"udp", b, "127.0.0.1", aport, "d1"}, P.receive(nil, 2000))
    assert.same({"udp", b, "127.0.0.1", aport, "d2"}, P.receive(nil, 2000))
    assert.same({nil, "einval"}, {net.recvfrom(b, 10)})
  end)

  it("TCP calls on a UDP socket are einval", function()
    local a = keep(assert(net.udp_open(0)))
    assert.same({nil, "einval"}, {net.send(a, "x")})
    assert.same({nil, "einval"}, {net.recv(a, 0, 10)})
  end)
end)

describe("net: many connections", function()
  it("serves 1,000 concurrent connections on loopback", function()
    local N = 1000
    local ls, port = listen({backlog = 1024})
    local me = P.self()
    local server = spawn(function()
      while true do
        local s = net.accept(ls)
        if not s then return end
        local h = P.spawn(function()
          local sock = P.receive()
          local d = net.recv(sock, 0, 60000)
          if d then net.send(sock, d) end
          P.receive(nil, 60000)   -- the client closes first
          net.close(sock)
        end)
        net.controlling_process(s, h)
        P.send(h, s)
      end
    end)
    assert.is_not_nil(server)
    local t0 = P.monotonic()
    for i = 1, N do
      spawn(function()
        local c, err = net.connect("127.0.0.1", port, nil, 60000)
        if not c then P.send(me, {i, err}) return end
        P.send(me, "connected")
        P.receive(nil, 60000)   -- hold every connection open at once
        net.send(c, "n" .. i)
        local r = net.recv(c, 0, 60000)
        P.send(me, {i, r})
      end)
    end
    for _ = 1, N do
      local r = P.receive(nil, 60000)
      assert(r == "connected", "a connect failed: " .. tostring(type(r) == "table" and r[2] or r))
    end
    for k = #spawned - N + 1, #spawned do P.send(spawned[k], "go") end
    local ok = 0
    for _ = 1, N do
      local r = P.receive(nil, 60000)
      if r and r[2] == "n" .. r[1] then ok = ok + 1 end
    end
    assert.equal(N, ok)
    assert.is_true(P.monotonic() - t0 < 120000)   -- generous: sanitizer builds are slow
  end)
end)
