-- sys_spec.lua — sys on gen_servers: get_state, replace_state, suspend/resume, change_code,
-- get_status, and the OTP-shaped exits (noproc, timeout, calling_self).
-- The callback module is fixtures/gen_server/gs_test.lua (shared with gen_server_spec).
local P = process
local gen_server = require "gen_server"
local sys = require "sys"
local support = dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "support.lua")

package.path = support.dir .. "/fixtures/gen_server/?.lua;" .. package.path

local me = P.self()
local spawned = {}

local function track(pid)
  spawned[#spawned + 1] = pid
  return pid
end

local function recv(pattern, ms)
  local m = P.receive(pattern, ms or 2000)
  assert(m ~= nil, "nothing received")
  return m
end

local function start(arg, opts)
  arg = arg or {}
  if arg.observer == nil then arg.observer = me end
  local pid = gen_server.start("gs_test", arg, opts)
  assert(P.is_pid(pid), "start failed")
  recv({"init", pid})
  return track(pid)
end

--- What f(...) raised (it must raise).
local function raised(f, ...)
  local r = table.pack(pcall(f, ...))
  assert(not r[1], "expected an error")
  return r[2]
end

--- Waits until pid has n messages queued.
local function queued(pid, n)
  assert(support.poll(2000, function() return P.info(pid).message_queue_len == n end),
         "queue never reached " .. n)
end

before_each(function()
  while P.receive(nil, 0) do end
end)

after_each(function()
  for _, pid in ipairs(spawned) do P.exit(pid, "kill") end
  spawned = {}
end)

describe("sys.get_state", function()
  it("returns the raw state, by pid and by name", function()
    local srv = start({value = {1, {2}}}, {name = "sys_named"})
    assert.are.same({observer = me, value = {1, {2}}}, sys.get_state(srv))
    assert.are.same({observer = me, value = {1, {2}}}, sys.get_state("sys_named"))
    assert.are.same({observer = me, value = {1, {2}}}, sys.get_state(srv, 1000))
  end)

  it("raises {timeout, {sys, get_state, {pid, 100}}} when the server is busy", function()
    local srv = start()
    gen_server.cast(srv, {"ret", table.pack("noreply", "$S"), 500})   -- busy for 500 ms
    local t0 = P.monotonic()
    assert.are.same({"timeout", {"sys", "get_state", {srv, 100}}}, raised(sys.get_state, srv, 100))
    local elapsed = P.monotonic() - t0
    assert.is_true(elapsed >= 90 and elapsed < 1000, "elapsed " .. elapsed)
    -- the late answer never arrives
    P.sleep(500)
    assert.is_nil(P.receive(function(m) return type(m) == "table" and P.is_ref(m[1]) end, 0))
    assert.are.same({observer = me}, sys.get_state(srv))
  end)
end)

describe("sys.replace_state", function()
  it("returns the new state, which the server then uses", function()
    local srv = start({value = 1})
    local new = sys.replace_state(srv, function(s) s.value = s.value + 41 return s end)
    assert.are.same({observer = me, value = 42}, new)
    assert.are.equal(42, gen_server.call(srv, {"get"}))
  end)

  it("a failing function raises {callback_failed, err} and keeps the state", function()
    local srv = start({value = 1})
    assert.are.same({"callback_failed", {"no"}},
                    raised(sys.replace_state, srv, function() error({"no"}, 0) end))
    assert.are.same({observer = me, value = 1}, sys.get_state(srv))
    assert.is_true(P.alive(srv))
  end)

  it("rejects a non-function", function()
    local srv = start()
    local err = raised(sys.replace_state, srv, 42)
    assert.is_truthy(err:find("bad argument #2 to 'replace_state' (function expected)", 1, true), err)
  end)
end)

describe("sys.suspend and sys.resume", function()
  it("a suspended server answers sys but not calls; queued calls are answered after resume, in order", function()
    local srv = start({value = {}})
    assert.are.equal("ok", sys.suspend(srv))
    assert.are.equal("suspended", sys.get_status(srv)[4].status)
    assert.are.same({"timeout", {"gen_server", "call", {srv, {"push", "t"}, 100}}},
                    raised(gen_server.call, srv, {"push", "t"}, 100))
    assert.are.same({observer = me, value = {}}, sys.get_state(srv))   -- sys still works
    local callers = {}
    for i = 1, 3 do
      callers[i] = track(P.spawn(function()
        P.send(me, {"answer", i, gen_server.call(srv, {"push", i}, 5000)})
      end))
      queued(srv, i + 1)   -- the timed-out request is still there too
    end
    gen_server.cast(srv, {"push", "c"})
    P.send(srv, "an info")
    queued(srv, 6)
    P.sleep(100)
    assert.is_nil(P.receive({"answer"}, 0))
    assert.is_nil(P.receive({"info", srv}, 0))
    assert.are.equal("ok", sys.resume(srv))
    for i = 1, 3 do assert.are.same({"answer", i, "ok"}, recv({"answer", i})) end
    assert.are.same({"info", srv, "an info"}, recv({"info", srv}))
    assert.are.same({"t", 1, 2, 3, "c"}, gen_server.call(srv, {"get"}))
    assert.are.equal("running", sys.get_status(srv)[4].status)
    assert.is_nil(P.receive(function(m) return type(m) == "table" and P.is_ref(m[1]) end, 0))
  end)

  it("a timeout armed before suspend fires again after resume", function()
    local srv = start()
    assert.are.equal("ok", gen_server.call(srv, {"ret", table.pack("reply", "ok", "$S", 500)}))
    sys.suspend(srv)
    P.sleep(600)
    assert.is_nil(P.receive({"info", srv}, 0))
    sys.resume(srv)
    assert.are.same({"info", srv, "timeout"}, recv({"info", srv}))
  end)
end)

describe("sys.change_code", function()
  it("runs code_change while suspended and keeps the new state", function()
    local srv = start({value = 5})
    sys.suspend(srv)
    assert.are.equal("ok", sys.change_code(srv, "gs_test", "1", "x"))
    assert.are.same({"migrated", "1", 5, "x"}, sys.get_state(srv).value)
    assert.are.equal("ok", sys.change_code(srv, nil, "2", "y", 1000))   -- nil: the server's module
    assert.are.same({"migrated", "2", {"migrated", "1", 5, "x"}, "y"}, sys.get_state(srv).value)
    sys.resume(srv)
    assert.are.same({"migrated", "2", {"migrated", "1", 5, "x"}, "y"}, gen_server.call(srv, {"get"}))
  end)

  it("refuses while running: nil, {unknown_system_msg, {change_code, mod, vsn, extra}}", function()
    local srv = start({value = 5})
    local v, err = sys.change_code(srv, "gs_test", "1", {"e"})
    assert.is_nil(v)
    assert.are.same({"unknown_system_msg", {"change_code", "gs_test", "1", {"e"}}}, err)
    assert.are.equal(5, sys.get_state(srv).value)
  end)

  it("returns the failure and keeps the old state; the server lives", function()
    local srv = start({value = 5})
    sys.suspend(srv)
    local cases = {
      {"fail", {"error", "r"}},
      {"crash", {"EXIT", {"cc_crash"}}},
      {"bogus", {"bad_return_value", {"bogus"}}},
    }
    for _, c in ipairs(cases) do
      local v, err = sys.change_code(srv, "gs_test", "1", c[1])
      assert.is_nil(v)
      assert.are.same(c[2], err)
      assert.are.equal(5, sys.get_state(srv).value)
    end
    local v, err = sys.change_code(srv, "no_such_module_for_cc", "1", "x")
    assert.is_nil(v)
    assert.are.equal("EXIT", err[1])
    assert.is_truthy(err[2]:find("module 'no_such_module_for_cc' not found", 1, true), err[2])
    sys.resume(srv)
    assert.are.equal(5, gen_server.call(srv, {"get"}))
  end)
end)

describe("sys.get_status", function()
  it("has OTP's shape: status, pid, module, and the details", function()
    track(P.spawn(function()
      P.send(me, {"started", P.self(), gen_server.start_link("gs_test", {observer = me, value = 1},
                                                            {name = "sys_status"})})
      P.receive()
    end))
    local m = recv({"started"})
    local parent, srv = m[2], track(m[3])
    assert.are.same({"status", srv, {"module", "gen_server"},
                     {dictionary = {}, status = "running", parent = parent, module = "gs_test",
                      name = "sys_status", state = {observer = me, value = 1}}},
                    sys.get_status(srv))
  end)

  it("a server started without a link is its own parent", function()
    local srv = start({value = 2})
    local st = sys.get_status(srv, 1000)
    assert.are.equal(srv, st[4].parent)
    assert.is_nil(st[4].name)
    assert.are.same({observer = me, value = 2}, st[4].state)
  end)
end)

describe("sys on a missing server", function()
  local function fns(server)
    return {
      {"get_state", {server}, function() return sys.get_state(server) end},
      {"get_state", {server, 100}, function() return sys.get_state(server, 100) end},
      {"replace_state", {server}, function() return sys.replace_state(server, function(s) return s end) end},
      {"replace_state", {server, 100}, function() return sys.replace_state(server, function(s) return s end, 100) end},
      {"suspend", {server}, function() return sys.suspend(server) end},
      {"suspend", {server, 100}, function() return sys.suspend(server, 100) end},
      {"resume", {server}, function() return sys.resume(server) end},
      {"resume", {server, 100}, function() return sys.resume(server, 100) end},
      {"change_code", {server, "gs_test", "1", "x"}, function() return sys.change_code(server, "gs_test", "1", "x") end},
      {"change_code", {server, "gs_test", "1", "x", 100}, function() return sys.change_code(server, "gs_test", "1", "x", 100) end},
      {"get_status", {server}, function() return sys.get_status(server) end},
      {"get_status", {server, 100}, function() return sys.get_status(server, 100) end},
    }
  end

  it("every function on a dead pid raises {noproc, {sys, fname, args}}", function()
    local srv = start()
    gen_server.stop(srv)
    for _, f in ipairs(fns(srv)) do
      assert.are.same({"noproc", {"sys", f[1], f[2]}}, raised(f[3]))
    end
  end)

  it("every function on an unknown name raises {noproc, {sys, fname, args}}", function()
    for _, f in ipairs(fns("no_such_sys_server")) do
      assert.are.same({"noproc", {"sys", f[1], f[2]}}, raised(f[3]))
    end
  end)

  it("a server using sys on itself gets calling_self", function()
    local srv = start()
    local new = sys.replace_state(srv, function(s)
      return {pcall(sys.get_state, process.self())}
    end)
    assert.are.same({false, {"calling_self", {"sys", "get_state", {srv}}}}, new)
  end)

  it("a server dying during the request: {reason, {sys, fname, args}}", function()
    local srv = start()
    gen_server.cast(srv, {"ret", table.pack("noreply", "$S"), 500})   -- busy for 500 ms
    P.spawn(function() P.sleep(50) P.exit(srv, "kill") end)
    assert.are.same({"killed", {"sys", "get_state", {srv}}}, raised(sys.get_state, srv))
  end)
end)
