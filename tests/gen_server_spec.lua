-- gen_server_spec.lua — gen_server: OTP.md §8 scenarios 14–28, every init and callback
-- return shape, terminate (§2.4), defaults, names, timeouts, hibernation, format_status.
-- Callback modules are files in fixtures/gen_server/ (gs_test answers what the spec asks).
local P = process
local ANY = P.ANY
local gen_server = require "gen_server"
local sys = require "sys"
local support = dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "support.lua")

local FIXTURES = support.dir .. "/fixtures/gen_server/"
package.path = FIXTURES .. "?.lua;" .. package.path

local me = P.self()
local spawned = {}   -- killed after each test

local function track(pid)
  spawned[#spawned + 1] = pid
  return pid
end

local function recv(pattern, ms)
  local m = P.receive(pattern, ms or 2000)
  assert(m ~= nil, "nothing received")
  return m
end

local function none(pattern, ms)
  local m = P.receive(pattern, ms or 0)
  assert(m == nil, "unexpected message")
end

local pack = table.pack
local function ret(...) return {"ret", pack(...)} end

--- gs_test started without a link, telling the test process what happens.
local function start(arg, opts)
  arg = arg or {}
  if arg.observer == nil then arg.observer = me end
  local pid, err = gen_server.start("gs_test", arg, opts)
  assert(P.is_pid(pid), "start failed")
  assert.are.same({"init", pid}, recv({"init", pid}))
  return track(pid), err
end

--- What f(...) raised (it must raise).
local function raised(f, ...)
  local r = pack(pcall(f, ...))
  assert(not r[1], "expected an error")
  return r[2]
end

--- Runs f(...) in a new process (trapping exits if trap) and returns what f returned. The
-- process then waits until the test ends, so the links it made hold.
local function inside(trap, f, ...)
  local pid = track(P.spawn(function(...)
    if trap then P.flag("trap_exit", true) end
    P.send(me, {"inside", P.self(), pack(pcall(f, ...))})
    P.receive()
  end, ...))
  local r = recv({"inside", pid}, 10000)[3]
  if not r[1] then error(r[2], 0) end
  return table.unpack(r, 2, r.n)
end

--- The next message that srv sent us (any kind).
local function from(srv, ms)
  return recv(function(m) return type(m) == "table" and m[2] == srv end, ms)
end

local function hibernating(pid)
  return support.poll(2000, function()
    local i = P.info(pid)
    return i ~= nil and i.current ~= nil and i.current.name == "hibernate"
  end)
end

--- stdout and stderr of a fixture script run by a child moonbeam.
local function child_output(script)
  local p = assert(io.popen(support.shell_quote(support.moonbeam) .. " " ..
                            support.shell_quote(FIXTURES .. script) .. " 2>&1"))
  local out = p:read("a")
  p:close()
  return out
end

local function call_args(srv, req, timeout) return {"gen_server", "call", {srv, req, timeout}} end

before_each(function()
  while P.receive(nil, 0) do end
end)

after_each(function()
  for _, pid in ipairs(spawned) do P.exit(pid, "kill") end
  spawned = {}
end)

-- ======================================================================= §8 scenarios

describe("OTP scenarios", function()
  it("14: init {stop, nope} kills a linked caller that does not trap exits", function()
    local caller, ref = P.spawn_monitor(function()
      gen_server.start_link("gs_test", {observer = me, ret = pack("stop", "nope")})
      P.send(me, {"caller survived"})
    end)
    track(caller)
    local srv = recv({"init", ANY})[2]
    assert.are.equal("nope", recv({"DOWN", ref}, 3000)[5])
    assert.is_false(P.alive(srv))
    none({"caller survived"}, 100)
    none({"terminate", srv}, 100)
  end)

  it("14: a trapping caller gets nil, nope and {EXIT, pid, nope}; no terminate", function()
    local a, b, exit, more = inside(true, function()
      local a, b = gen_server.start_link("gs_test", {observer = me, ret = pack("stop", "nope")})
      return a, b, P.receive({"EXIT", ANY, ANY}, 0), P.receive(nil, 100)
    end)
    local srv = recv({"init", ANY})[2]
    assert.is_nil(a)
    assert.are.equal("nope", b)
    assert.are.same({"EXIT", srv, "nope"}, exit)
    assert.is_nil(more)
    none({"terminate", srv}, 100)
  end)

  it("15: init ignore returns \"ignore\"; a trapping caller sees {EXIT, pid, normal}", function()
    local a, exit = inside(true, function()
      local a = gen_server.start_link("gs_test", {observer = me, ret = pack("ignore")})
      return a, P.receive({"EXIT", ANY, ANY}, 0)
    end)
    local srv = recv({"init", ANY})[2]
    assert.are.equal("ignore", a)
    assert.are.same({"EXIT", srv, "normal"}, exit)
    assert.is_false(P.alive(srv))
  end)

  it("16: init slower than the timeout option: nil, timeout after ~100 ms, no process, no EXIT", function()
    local a, b, elapsed, srv, alive, queue = inside(true, function()
      local t0 = P.monotonic()
      local a, b = gen_server.start_link("gs_test", {observer = P.self(), sleep = 500},
                                         {timeout = 100})
      local elapsed = P.monotonic() - t0
      local srv = P.receive({"init", ANY}, 0)[2]
      local alive = P.alive(srv)
      P.sleep(600)   -- past the end of the sleep init would have done
      return a, b, elapsed, srv, alive, P.info(P.self()).message_queue_len
    end)
    assert.is_nil(a)
    assert.are.equal("timeout", b)
    assert.is_true(elapsed >= 90 and elapsed < 1000, "elapsed " .. elapsed)
    assert.is_true(P.is_pid(srv))
    assert.is_false(alive)
    assert.are.equal(0, queue)
  end)

  it("17: a taken name gives nil, {already_started, pid1} and spawns nothing", function()
    local pid1 = start({}, {name = "srv1"})
    local before = {}
    for _, p in ipairs(P.list()) do before[p] = true end
    local a, b = gen_server.start("gs_test", {observer = me}, {name = "srv1"})
    assert.is_nil(a)
    assert.are.same({"already_started", pid1}, b)
    for _, p in ipairs(P.list()) do assert.is_true(before[p] == true, "new process " .. tostring(p)) end
    none({"init", ANY}, 100)
    -- the same through start_link from a trapping caller: no EXIT either
    local c, d, exit = inside(true, function()
      local c, d = gen_server.start_link("gs_test", {observer = me}, {name = "srv1"})
      return c, d, P.receive(nil, 100)
    end)
    assert.is_nil(c)
    assert.are.same({"already_started", pid1}, d)
    assert.is_nil(exit)
    assert.are.equal(pid1, P.whereis("srv1"))
  end)

  it("18: call timeout raises {timeout, {gen_server, call, {pid, req, 100}}}; no late reply", function()
    local srv = start({value = 7})
    local err, elapsed, queue = inside(false, function(srv)
      local t0 = P.monotonic()
      local _, err = pcall(gen_server.call, srv, {"sleep", 300, "late"}, 100)
      local elapsed = P.monotonic() - t0
      P.sleep(300)
      return err, elapsed, P.info(P.self()).message_queue_len
    end, srv)
    assert.are.same({"timeout", call_args(srv, {"sleep", 300, "late"}, 100)}, err)
    assert.is_true(elapsed >= 90 and elapsed < 1000, "elapsed " .. elapsed)
    assert.are.equal(0, queue)
    assert.are.equal(7, gen_server.call(srv, {"get"}))   -- the server went on
  end)

  it("19: call to a dead pid or an unknown name raises noproc with the 5000 default", function()
    local srv = start()
    assert.are.equal("ok", gen_server.stop(srv))
    assert.are.same({"noproc", call_args(srv, "hello", 5000)}, raised(gen_server.call, srv, "hello"))
    assert.are.same({"noproc", call_args("no_such_server", "hello", 5000)},
                    raised(gen_server.call, "no_such_server", "hello"))
    assert.are.same({"noproc", call_args(srv, "hello", "infinity")},
                    raised(gen_server.call, srv, "hello", "infinity"))
  end)

  it("20: a raise in handle_call becomes the caller's exit reason and the server's", function()
    local srv = start()
    local ref = P.monitor(srv)
    assert.are.same({{"kaboom", 1}, call_args(srv, {"raise", {"kaboom", 1}}, 5000)},
                    raised(gen_server.call, srv, {"raise", {"kaboom", 1}}))
    assert.are.same({"terminate", srv, {"kaboom", 1}}, recv({"terminate", srv}))
    assert.are.same({"kaboom", 1}, recv({"DOWN", ref})[5])
    -- an error with a position keeps it, as the reason is the raised value
    local srv2 = start()
    local err = raised(gen_server.call, srv2, {"raise_pos", "boom"})
    assert.are.equal("string", type(err[1]))
    assert.is_truthy(err[1]:find("gs_test.lua:%d+: boom$"), err[1])
    assert.are.same(call_args(srv2, {"raise_pos", "boom"}, 5000), err[2])
  end)

  it("20: a server that stops normal without replying makes the call raise {normal, ...}", function()
    local srv = start()
    local req = ret("stop", "normal", "$S")
    assert.are.same({"normal", call_args(srv, req, 5000)}, raised(gen_server.call, srv, req))
    assert.are.same({"terminate", srv, "normal"}, recv({"terminate", srv}))
    -- process.exit("normal") inside the callback: the same
    local srv2 = start()
    local ref = P.monitor(srv2)
    assert.are.same({"normal", call_args(srv2, {"exit", "normal"}, 5000)},
                    raised(gen_server.call, srv2, {"exit", "normal"}))
    assert.are.equal("normal", recv({"DOWN", ref})[5])
  end)

  it("21: a deferred reply from another process 50 ms later is the call's result", function()
    local srv = start()
    local t0 = P.monotonic()
    assert.are.equal("deferred", gen_server.call(srv, {"defer", 50}))
    local elapsed = P.monotonic() - t0
    assert.is_true(elapsed >= 40 and elapsed < 1000, "elapsed " .. elapsed)
    assert.are.same({"reply_result", "ok"}, recv({"reply_result"}))
    assert.is_true(P.alive(srv))
  end)

  it("22: stop with a reply: terminate runs first, the reply comes after it", function()
    local srv = start({terminate_sleep = 100})
    local ref = P.monitor(srv)
    local t0 = P.monotonic()
    assert.are.equal("bye", gen_server.call(srv, ret("stop", "normal", "bye", "$S")))
    local elapsed = P.monotonic() - t0
    assert.is_true(elapsed >= 90 and elapsed < 1000, "elapsed " .. elapsed)
    assert.are.same({"terminate", srv, "normal"}, P.receive({"terminate", srv}, 0))
    assert.are.same({"terminate_done", srv}, P.receive({"terminate_done", srv}, 0))
    assert.are.equal("normal", recv({"DOWN", ref})[5])
  end)

  it("23: a timeout fires handle_info(timeout) after ~50 ms", function()
    local srv = start()
    local t0 = P.monotonic()
    assert.are.equal("ok", gen_server.call(srv, ret("reply", "ok", "$S", 50)))
    assert.are.same({"info", srv, "timeout"}, recv({"info", srv}))
    local elapsed = P.monotonic() - t0
    assert.is_true(elapsed >= 40 and elapsed < 1000, "elapsed " .. elapsed)
    none({"info", srv}, 200)   -- once only
  end)

  it("23: a message arriving before the timeout cancels it", function()
    local srv = start()   -- a 300 ms timeout rather than 100: room for a loaded machine
    assert.are.equal("ok", gen_server.call(srv, ret("reply", "ok", "$S", 300)))
    P.sleep(30)
    P.send(srv, "ping")
    assert.are.same({"info", srv, "ping"}, recv({"info", srv}))
    none({"info", srv}, 500)
  end)

  it("23: {continue, c} runs handle_continue before any queued message", function()
    local srv = start()
    gen_server.cast(srv, {"ret", pack("noreply", "$S", {"continue", "c"}), 100})
    P.send(srv, "queued")   -- arrives while the cast sleeps
    assert.are.same({"continue", srv, "c"}, from(srv))
    assert.are.same({"info", srv, "queued"}, from(srv))
  end)

  it("24: the parent's shutdown kills a non-trapping server without terminate", function()
    local parent = track(P.spawn(function()
      P.send(me, {"started", gen_server.start_link("gs_test", {observer = me})})
      P.receive()
    end))
    local srv = recv({"started"})[2]
    local ref = P.monitor(srv)
    P.exit(parent, "shutdown")
    assert.are.equal("shutdown", recv({"DOWN", ref})[5])
    none({"terminate", srv}, 100)
  end)

  it("24: a trapping server runs terminate(shutdown) on its parent's shutdown, then exits", function()
    local parent = track(P.spawn(function()
      P.send(me, {"started", gen_server.start_link("gs_test", {observer = me, trap = true})})
      P.receive()
    end))
    local srv = recv({"started"})[2]
    local ref = P.monitor(srv)
    P.exit(parent, "shutdown")
    assert.are.same({"terminate", srv, "shutdown"}, recv({"terminate", srv}))
    assert.are.equal("shutdown", recv({"DOWN", ref})[5])
  end)

  it("25: a linked non-parent's exit comes to handle_info; the server goes on", function()
    track(P.spawn(function()
      P.send(me, {"started", gen_server.start_link("gs_test", {observer = me, trap = true})})
      P.receive()
    end))
    local srv = recv({"started"})[2]
    local other = P.spawn(function(srv)
      P.link(srv)
      P.exit("other")
    end, srv)
    assert.are.same({"info", srv, {"EXIT", other, "other"}}, recv({"info", srv}))
    assert.is_true(P.alive(srv))
    assert.are.equal("ok", gen_server.call(srv, {"set", 1}))
    none({"terminate", srv}, 0)
  end)

  it("26: stop(P) returns ok after terminate(normal)", function()
    local srv = start()
    assert.are.equal("ok", gen_server.stop(srv))
    assert.are.same({"terminate", srv, "normal"}, P.receive({"terminate", srv}, 0))
    assert.is_false(P.alive(srv))
  end)

  it("26: stop of a dead server raises {noproc, {gen_server, stop, ...}}", function()
    local srv = start()
    gen_server.stop(srv)
    assert.are.same({"noproc", {"gen_server", "stop", {srv, "normal", "infinity"}}},
                    raised(gen_server.stop, srv))
    assert.are.same({"noproc", {"gen_server", "stop", {"nobody_here", "shutdown", 100}}},
                    raised(gen_server.stop, "nobody_here", "shutdown", 100))
  end)

  it("26: stop timing out raises timeout and leaves the server terminating", function()
    local srv = start({terminate_sleep = 1000})
    local ref = P.monitor(srv)
    local t0 = P.monotonic()
    assert.are.same({"timeout", {"gen_server", "stop", {srv, "normal", 100}}},
                    raised(gen_server.stop, srv, "normal", 100))
    local elapsed = P.monotonic() - t0
    assert.is_true(elapsed >= 90 and elapsed < 1000, "elapsed " .. elapsed)
    assert.is_true(P.alive(srv))
    assert.are.same({"terminate", srv, "normal"}, recv({"terminate", srv}))
    assert.are.same({"terminate_done", srv}, recv({"terminate_done", srv}, 3000))
    assert.are.equal("normal", recv({"DOWN", ref}, 3000)[5])
  end)

  it("27: suspend, call timeout, change_code, resume: the state is migrated", function()
    local srv = start({value = 5})
    assert.are.equal("ok", sys.suspend(srv))
    assert.are.same({"timeout", call_args(srv, {"get"}, 100)}, raised(gen_server.call, srv, {"get"}, 100))
    assert.are.equal("ok", sys.change_code(srv, "gs_test", "v1", "extra"))
    assert.are.equal("ok", sys.resume(srv))
    assert.are.same({"migrated", "v1", 5, "extra"}, gen_server.call(srv, {"get"}))
    none(function(m) return type(m) == "table" and P.is_ref(m[1]) end, 0)   -- no late reply
  end)

  it("27: change_code without suspend is an unknown system message", function()
    local srv = start({value = 5})
    local v, err = sys.change_code(srv, "gs_test", "v1", "extra")
    assert.is_nil(v)
    assert.are.same({"unknown_system_msg", {"change_code", "gs_test", "v1", "extra"}}, err)
    assert.are.equal(5, gen_server.call(srv, {"get"}))
  end)

  it("27: a failing code_change keeps the old state and the server", function()
    local srv = start({value = 5})
    sys.suspend(srv)
    local v, err = sys.change_code(srv, "gs_test", "v1", "fail")
    assert.is_nil(v)
    assert.are.same({"error", "r"}, err)
    v, err = sys.change_code(srv, "gs_test", "v1", "crash")
    assert.is_nil(v)
    assert.are.same({"EXIT", {"cc_crash"}}, err)
    v, err = sys.change_code(srv, "gs_test", "v1", "bogus")
    assert.is_nil(v)
    assert.are.same({"bad_return_value", {"bogus"}}, err)
    sys.resume(srv)
    assert.are.equal(5, gen_server.call(srv, {"get"}))
  end)

  it("28: a bad return kills the server; the caller exits {{bad_return_value, v}, ...}", function()
    local srv = start()
    local ref = P.monitor(srv)
    local req = ret("bogus")
    assert.are.same({{"bad_return_value", {"bogus"}}, call_args(srv, req, 5000)},
                    raised(gen_server.call, srv, req))
    assert.are.same({"terminate", srv, {"bad_return_value", {"bogus"}}}, recv({"terminate", srv}))
    assert.are.same({"bad_return_value", {"bogus"}}, recv({"DOWN", ref})[5])
  end)
end)

-- ======================================================================= init

describe("init", function()
  it("\"ok\", s: start returns the pid; the state is s", function()
    local srv = start({value = "v"})
    assert.is_true(P.is_pid(srv))
    assert.are.equal("v", gen_server.call(srv, {"get"}))
    assert.are.same({observer = me, value = "v"}, sys.get_state(srv))
  end)

  it("\"ok\", s, 100: handle_info(timeout) after ~100 ms of quiet", function()
    local t0 = P.monotonic()
    local srv = start({ret = pack("ok", "$S", 100)})
    assert.are.same({"info", srv, "timeout"}, recv({"info", srv}))
    local elapsed = P.monotonic() - t0
    assert.is_true(elapsed >= 90 and elapsed < 1000, "elapsed " .. elapsed)
  end)

  it("\"ok\", s, \"hibernate\": the server hibernates once idle", function()
    local srv = start({ret = pack("ok", "$S", "hibernate"), value = 3})
    assert.is_true(hibernating(srv))
    assert.are.equal(3, gen_server.call(srv, {"get"}))
    P.sleep(50)
    assert.are_not.equal("hibernate", P.info(srv).current.name)   -- only after init
  end)

  it("\"ok\", s, {continue, c}: handle_continue first, then what came during init", function()
    track(P.spawn(function()
      P.send(me, {"started", gen_server.start("gs_test", {observer = me, sleep = 100,
        send_self = "from itself", ret = pack("ok", "$S", {"continue", "c"})})})
      P.receive()
    end))
    local srv = recv({"init", ANY})[2]
    track(srv)
    P.send(srv, "during init")
    assert.are.same({"started", srv}, recv({"started"}))
    assert.are.same({"continue", srv, "c"}, from(srv))
    assert.are.same({"info", srv, "during init"}, from(srv))   -- sent before init's sleep
    assert.are.same({"info", srv, "from itself"}, from(srv))   -- sent after it
  end)

  it("\"ignore\": start returns \"ignore\", the process exits normal, the caller lives", function()
    local a, alive = inside(false, function()
      local a = gen_server.start_link("gs_test", {observer = me, ret = pack("ignore")})
      return a, P.alive(P.self())
    end)
    local srv = recv({"init", ANY})[2]
    assert.are.equal("ignore", a)
    assert.is_true(alive)
    assert.is_false(P.alive(srv))
    none({"terminate", srv}, 50)
  end)

  it("\"stop\", r from start (no link): nil, r and no signal to the caller", function()
    local a, b, more = inside(true, function()
      local a, b = gen_server.start("gs_test", {observer = me, ret = pack("stop", "nope")})
      return a, b, P.receive(nil, 100)
    end)
    assert.is_nil(a)
    assert.are.equal("nope", b)
    assert.is_nil(more)
  end)

  it("\"stop\", normal: a non-trapping linked caller survives", function()
    local a, b = inside(false, function()
      return gen_server.start_link("gs_test", {observer = me, ret = pack("stop", "normal")})
    end)
    assert.is_nil(a)
    assert.are.equal("normal", b)
  end)

  it("a raise: nil, the raised value; a trapping linked caller gets the same EXIT", function()
    local a, b, exit = inside(true, function()
      local a, b = gen_server.start_link("gs_test", {observer = me, raise = {"init_boom"}})
      return a, b, P.receive({"EXIT", ANY, ANY}, 0)
    end)
    local srv = recv({"init", ANY})[2]
    assert.is_nil(a)
    assert.are.same({"init_boom"}, b)
    assert.are.same({"EXIT", srv, {"init_boom"}}, exit)
    none({"terminate", srv}, 50)
    -- a string error keeps its position
    local c, d = gen_server.start("gs_test", {raise_pos = "init failed"})
    assert.is_nil(c)
    assert.is_truthy(d:find("gs_test.lua:%d+: init failed$"), d)
  end)

  it("process.exit(r) in init: nil, r", function()
    local a, b = gen_server.start("gs_test", {exit = {"gone", 1}})
    assert.is_nil(a)
    assert.are.same({"gone", 1}, b)
  end)

  it("any other result: nil, {bad_return_value, {values...}}", function()
    local cases = {
      {pack("bogus"), {"bogus"}},
      {pack(), {}},
      {pack("ok"), {"ok"}},
      {pack("ok", 1, "soon"), {"ok", 1, "soon"}},
      {pack("ok", 1, -5), {"ok", 1, -5}},
      {pack("ok", 1, 2, 3), {"ok", 1, 2, 3}},
      {pack("ignore", 1), {"ignore", 1}},
      {pack("stop"), {"stop"}},
      {pack("reply", 1, 2), {"reply", 1, 2}},
    }
    for _, c in ipairs(cases) do
      local a, b = gen_server.start("gs_test", {ret = c[1]})
      assert.is_nil(a)
      assert.are.same({"bad_return_value", c[2]}, b)
    end
  end)

  it("a module that cannot be loaded: nil, the require error", function()
    local a, b = gen_server.start("no_such_callback_module", nil)
    assert.is_nil(a)
    assert.is_truthy(b:find("module 'no_such_callback_module' not found", 1, true), b)
  end)

  it("bad arguments raise in the caller", function()
    local err = raised(gen_server.start, 42, nil)
    assert.is_truthy(err:find("bad argument #1 to 'start' (module name or table expected, got number)", 1, true), err)
    err = raised(gen_server.start, "gs_test", nil, {name = 7})
    assert.is_truthy(err:find("bad argument #3 to 'start' (name must be a string)", 1, true), err)
  end)
end)

-- ======================================================================= callback returns

--- Ways to make the server run a callback whose result is `packed`.
local KINDS = {
  handle_call = function(srv, packed)
    P.spawn(function() pcall(gen_server.call, srv, {"ret", packed}, 1000) end)
  end,
  handle_cast = function(srv, packed) gen_server.cast(srv, {"ret", packed}) end,
  handle_info = function(srv, packed) P.send(srv, {"ret", packed}) end,
  handle_continue = function(srv, packed)
    gen_server.cast(srv, {"ret", pack("noreply", "$S", {"continue", {"ret", packed}})})
  end,
}

for _, kind in ipairs({"handle_call", "handle_cast", "handle_info", "handle_continue"}) do
  local run = KINDS[kind]
  describe(kind .. " returning", function()
    it("\"noreply\", s: s is the new state", function()
      local srv = start({value = "old"})
      run(srv, pack("noreply", {observer = me, value = "new"}))
      assert.is_truthy(support.poll(2000, function() return sys.get_state(srv).value == "new" end))
      assert.is_true(P.alive(srv))
    end)

    it("\"noreply\", s, 50: handle_info(timeout) about 50 ms later", function()
      local srv = start()
      local t0 = P.monotonic()
      run(srv, pack("noreply", "$S", 50))
      assert.are.same({"info", srv, "timeout"}, recv({"info", srv, "timeout"}))
      assert.is_true(P.monotonic() - t0 >= 40)
    end)

    it("\"noreply\", s, \"hibernate\": the server hibernates", function()
      local srv = start({value = 1})
      run(srv, pack("noreply", "$S", "hibernate"))
      assert.is_true(hibernating(srv))
      assert.are.equal(1, gen_server.call(srv, {"get"}))
    end)

    it("\"noreply\", s, {continue, c}: handle_continue(c)", function()
      local srv = start()
      run(srv, pack("noreply", "$S", {"continue", "next"}))
      assert.are.same({"continue", srv, "next"}, recv({"continue", srv, "next"}))
    end)

    it("\"stop\", r, s: terminate(r, s), then the server exits r", function()
      local srv = start({value = "old"})
      local ref = P.monitor(srv)
      run(srv, pack("stop", {"shutdown", "done"}, {observer = me, value = "last"}))
      assert.are.same({"terminate", srv, {"shutdown", "done"}, "last"}, recv({"terminate", srv}))
      assert.are.same({"shutdown", "done"}, recv({"DOWN", ref})[5])
    end)

    it("anything else: {bad_return_value, {values...}}, terminate gets the old state", function()
      local srv = start({value = "old"})
      local ref = P.monitor(srv)
      local new = {observer = me, value = "new"}
      run(srv, pack("noreply", new, "soon"))
      local reason = {"bad_return_value", {"noreply", new, "soon"}}
      assert.are.same({"terminate", srv, reason, "old"}, recv({"terminate", srv}))
      assert.are.same(reason, recv({"DOWN", ref})[5])
      local srv2 = start()
      ref = P.monitor(srv2)
      run(srv2, pack("stop", "normal"))
      assert.are.same({"bad_return_value", {"stop", "normal"}}, recv({"DOWN", ref})[5])
    end)
  end)
end

describe("handle_call returning", function()
  it("\"reply\", r, s: the call returns r; s is the new state", function()
    local srv = start({value = "old"})
    assert.are.equal("r", gen_server.call(srv, ret("reply", "r", {observer = me, value = "new"})))
    assert.are.equal("new", gen_server.call(srv, {"get"}))
    assert.are.same({"x", {1, 2}}, gen_server.call(srv, ret("reply", {"x", {1, 2}}, "$S")))
  end)

  it("\"reply\", r, s, 50: the reply, then handle_info(timeout)", function()
    local srv = start()
    assert.are.equal("r", gen_server.call(srv, ret("reply", "r", "$S", 50)))
    assert.are.same({"info", srv, "timeout"}, recv({"info", srv}))
  end)

  it("\"reply\", r, s, \"hibernate\": the reply, then hibernation", function()
    local srv = start()
    assert.are.equal("r", gen_server.call(srv, ret("reply", "r", "$S", "hibernate")))
    assert.is_true(hibernating(srv))
  end)

  it("\"reply\", r, s, {continue, c}: the reply, then handle_continue before the next message", function()
    local srv = start()
    sys.suspend(srv)   -- so that the call and a message are both queued, in this order
    track(P.spawn(function()
      P.send(me, {"answer", gen_server.call(srv, ret("reply", "r", "$S", {"continue", "c"}))})
    end))
    assert.is_truthy(support.poll(2000, function() return P.info(srv).message_queue_len == 1 end))
    P.send(srv, "queued")
    sys.resume(srv)
    assert.are.same({"answer", "r"}, recv({"answer"}))
    assert.are.same({"continue", srv, "c"}, from(srv))
    assert.are.same({"info", srv, "queued"}, from(srv))
  end)

  it("\"noreply\", s: no answer, so the call times out; the server goes on", function()
    local srv = start()
    local req = ret("noreply", "$S")
    assert.are.same({"timeout", call_args(srv, req, 100)}, raised(gen_server.call, srv, req, 100))
    assert.is_true(P.alive(srv))
  end)

  it("\"stop\", r, reply, s: terminate(r), the reply, then the exit", function()
    local srv = start()
    local ref = P.monitor(srv)
    assert.are.equal("bye", gen_server.call(srv, ret("stop", {"shutdown", 1}, "bye", "$S")))
    assert.are.same({"terminate", srv, {"shutdown", 1}}, P.receive({"terminate", srv}, 0))
    assert.are.same({"shutdown", 1}, recv({"DOWN", ref})[5])
  end)

  it("\"stop\", r, reply, s with terminate raising: the reply still comes; exit with the error", function()
    local srv = start({terminate_raise = {"tboom"}})
    local ref = P.monitor(srv)
    assert.are.equal("bye", gen_server.call(srv, ret("stop", "normal", "bye", "$S")))
    assert.are.same({"tboom"}, recv({"DOWN", ref})[5])
  end)

  it("\"stop\", r, s: the caller exits {r, ...}", function()
    local srv = start()
    local req = ret("stop", {"shutdown", 2}, "$S")
    assert.are.same({{"shutdown", 2}, call_args(srv, req, 5000)}, raised(gen_server.call, srv, req))
  end)
end)

-- ======================================================================= calls and casts

describe("calls and casts", function()
  it("a server calling itself raises calling_self, by pid and by name", function()
    local srv = start({}, {name = "gs_self"})
    assert.are.same({false, {"calling_self", call_args(srv, {"get"}, 5000)}},
                    gen_server.call(srv, {"call", srv}))
    assert.are.same({false, {"calling_self", call_args("gs_self", {"get"}, 5000)}},
                    gen_server.call(srv, {"call", "gs_self"}))
    assert.are.same({false, {"calling_self", {"gen_server", "stop", {srv, "normal", "infinity"}}}},
                    gen_server.call(srv, {"stop_self"}))
    assert.is_true(P.alive(srv))
  end)

  it("cast returns \"ok\" for a live server, a dead pid and an unknown name", function()
    local srv = start({value = {}})
    assert.are.equal("ok", gen_server.cast(srv, {"push", 1}))
    assert.are.same({1}, gen_server.call(srv, {"get"}))
    gen_server.stop(srv)
    assert.are.equal("ok", gen_server.cast(srv, {"push", 2}))
    assert.are.equal("ok", gen_server.cast("no_such_server", {"push", 3}))
  end)

  it("calls are answered in the order they were sent", function()
    local srv = start({value = {}})
    for i = 1, 20 do gen_server.cast(srv, {"push", i}) end
    local got = gen_server.call(srv, {"get"})
    assert.are.equal(20, #got)
    for i = 1, 20 do assert.are.equal(i, got[i]) end
  end)

  it("reply returns \"ok\", also to a caller that gave up", function()
    local srv = start()
    assert.are.equal("deferred", gen_server.call(srv, {"defer", 10}))
    assert.are.same({"reply_result", "ok"}, recv({"reply_result"}))
    local req = {"defer", 200}
    assert.are.same({"timeout", call_args(srv, req, 50)}, raised(gen_server.call, srv, req, 50))
    assert.are.same({"reply_result", "ok"}, recv({"reply_result"}))
    none(function(m) return type(m) == "table" and P.is_ref(m[1]) end, 50)
  end)

  it("a call to a server killed during the call raises {killed, ...}", function()
    local srv = start()
    P.spawn(function() P.sleep(50) P.exit(srv, "kill") end)
    assert.are.same({"killed", call_args(srv, {"sleep", 1000, "x"}, 5000)},
                    raised(gen_server.call, srv, {"sleep", 1000, "x"}))
  end)
end)

-- ======================================================================= defaults

describe("missing callbacks", function()
  it("handle_call: the server crashes with the documented message, and so does the call", function()
    local srv = track(gen_server.start("gs_bare", me))
    local ref = P.monitor(srv)
    local why = "attempted to call a gen_server but no handle_call callback was provided"
    assert.are.same({why, call_args(srv, "hi", 5000)}, raised(gen_server.call, srv, "hi"))
    assert.are.equal(why, recv({"DOWN", ref})[5])
  end)

  it("handle_cast: the server crashes with the documented message", function()
    local srv = track(gen_server.start("gs_bare", me))
    local ref = P.monitor(srv)
    assert.are.equal("ok", gen_server.cast(srv, "hi"))
    assert.are.equal("attempted to cast a gen_server but no handle_cast callback was provided",
                     recv({"DOWN", ref})[5])
  end)

  it("handle_info: the message is logged and the server goes on", function()
    local srv = track(gen_server.start("gs_bare", me))
    P.send(srv, {"stray"})
    P.send(srv, "another")
    assert.are.equal(me, sys.get_state(srv))
    assert.is_true(P.alive(srv))
    -- the log, seen from a child moonbeam's stderr
    local out = child_output("stray_report.lua")
    assert.is_truthy(out:find("alive\ttrue", 1, true), out)
    assert.is_truthy(out:find("=ERROR REPORT==== [^\n]* ===\n%*%* Undefined handle_info in <0%.%d+%.%d+>\n" ..
                              "    Unhandled message: {\"stray\", 1}\n"), out)
  end)

  it("terminate does nothing, code_change keeps the state", function()
    local srv = track(gen_server.start("gs_bare", me))
    sys.suspend(srv)
    assert.are.equal("ok", sys.change_code(srv, "gs_bare", "0", "x"))
    assert.are.equal("ok", sys.change_code(srv, nil, "0", "x"))
    sys.resume(srv)
    assert.are.equal(me, sys.get_state(srv))
    assert.are.equal("ok", gen_server.stop(srv))
  end)

  it("init and handle_continue raise \"gen_server callback ... is not defined\"", function()
    local a, b = gen_server.start({}, nil)
    assert.is_nil(a)
    assert.are.equal("gen_server callback init is not defined", b)
    local exit = inside(true, function()
      local srv = gen_server.start_link({init = function() return "ok", 0, {"continue", 1} end}, nil)
      return P.receive({"EXIT", srv, ANY}, 2000)
    end)
    assert.are.equal("gen_server callback handle_continue is not defined", exit[3])
  end)
end)

-- ======================================================================= terminate

describe("terminate (OTP.md §2.4)", function()
  it("runs on a raise, with the raised value", function()
    local srv = start()
    gen_server.cast(srv, {"raise", {"oops"}})
    assert.are.same({"terminate", srv, {"oops"}}, recv({"terminate", srv}))
  end)

  it("runs on stop/3 with the reason; the server exits with it", function()
    local srv = start()
    local ref = P.monitor(srv)
    assert.are.equal("ok", gen_server.stop(srv, {"shutdown", "x"}))
    assert.are.same({"terminate", srv, {"shutdown", "x"}}, P.receive({"terminate", srv}, 0))
    assert.are.same({"shutdown", "x"}, recv({"DOWN", ref})[5])
  end)

  it("never runs on kill, even when trapping", function()
    local srv = start({trap = true})
    local ref = P.monitor(srv)
    P.exit(srv, "kill")
    assert.are.equal("killed", recv({"DOWN", ref})[5])
    none({"terminate", srv}, 100)
  end)

  it("a server started without a link has no parent: its starter's exit goes to handle_info", function()
    local starter = P.spawn(function()
      local srv = gen_server.start("gs_test", {observer = me, trap = true})
      P.link(srv)
      P.send(me, {"started", srv})
      P.exit("shutdown")
    end)
    local srv = track(recv({"started"})[2])
    assert.are.same({"info", srv, {"EXIT", starter, "shutdown"}}, recv({"info", srv}))
    assert.is_true(P.alive(srv))
    none({"terminate", srv}, 50)
  end)

  it("a trapping suspended server still terminates on its parent's exit", function()
    track(P.spawn(function()
      P.send(me, {"started", gen_server.start_link("gs_test", {observer = me, trap = true})})
      P.receive()
    end))
    local srv = recv({"started"})[2]
    local parent = P.info(srv).links[1]
    sys.suspend(srv)
    local ref = P.monitor(srv)
    P.exit(parent, "shutdown")
    assert.are.same({"terminate", srv, "shutdown"}, recv({"terminate", srv}))
    assert.are.equal("shutdown", recv({"DOWN", ref})[5])
  end)

  it("a raise in terminate becomes the exit reason, and stop raises it", function()
    local srv = start({terminate_raise = {"tboom"}})
    local ref = P.monitor(srv)
    assert.are.same({{"tboom"}, {"gen_server", "stop", {srv, "normal", "infinity"}}},
                    raised(gen_server.stop, srv))
    assert.are.same({"tboom"}, recv({"DOWN", ref})[5])
  end)
end)

-- ======================================================================= options, names, modules

describe("options and names", function()
  it("hibernate_after: an idle server hibernates, and still answers", function()
    local srv = start({value = 4}, {hibernate_after = 50})
    assert.is_true(hibernating(srv))
    assert.are.equal(4, gen_server.call(srv, {"get"}))
    assert.is_true(hibernating(srv))
    local plain = start()
    P.sleep(200)
    assert.are_not.equal("hibernate", P.info(plain).current.name)
  end)

  it("a registered name works for call, cast, stop and whereis", function()
    local srv = start({value = {}}, {name = "gs_named"})
    assert.are.equal(srv, P.whereis("gs_named"))
    assert.are.equal(srv, gen_server.whereis("gs_named"))
    assert.are.equal(srv, gen_server.whereis(srv))
    assert.is_nil(gen_server.whereis("nobody_has_this"))
    assert.are.equal("gs_named", P.info(srv).name)
    assert.are.equal("ok", gen_server.cast("gs_named", {"push", "a"}))
    assert.are.same({"a"}, gen_server.call("gs_named", {"get"}))
    assert.are.equal("ok", gen_server.stop("gs_named"))
    assert.is_nil(P.whereis("gs_named"))
    assert.are.same({"noproc", call_args("gs_named", {"get"}, 5000)},
                    raised(gen_server.call, "gs_named", {"get"}))
  end)

  it("a failed start leaves the name free", function()
    local a = gen_server.start("gs_test", {ret = pack("stop", "nope")}, {name = "gs_failed"})
    assert.is_nil(a)
    assert.is_nil(P.whereis("gs_failed"))
    local b = gen_server.start("gs_test", {sleep = 300}, {name = "gs_failed", timeout = 50})
    assert.is_nil(b)
    assert.is_nil(P.whereis("gs_failed"))
  end)

  it("a table of functions is a callback module (copied with its upvalues)", function()
    local base = 10
    local mod = {
      init = function(n) return "ok", n + base end,
      handle_call = function(req, from, n) return "reply", n, n + 1 end,
      handle_cast = function(msg, n) return "noreply", n + msg end,
    }
    local srv = track(gen_server.start(mod, 1))
    assert.are.equal(11, gen_server.call(srv, "next"))
    gen_server.cast(srv, 100)
    assert.are.equal(112, gen_server.call(srv, "next"))
    assert.are.equal("(table)", sys.get_status(srv)[4].module)
  end)

  it("spawn_opt options reach the server", function()
    local srv = start({}, {spawn_opt = {max_heap = 64 * 1024 * 1024}})
    assert.is_true(P.alive(srv))
    local ref = P.monitor(srv)
    local srv2 = track(gen_server.start({
      init = function() return "ok", {} end,
      handle_cast = function(n, s)
        for i = 1, n do s[i] = string.rep("x", 100) .. i end
        return "noreply", s
      end}, nil, {spawn_opt = {max_heap = 2 * 1024 * 1024}}))
    local ref2 = P.monitor(srv2)
    gen_server.cast(srv2, 200000)
    assert.are.equal("max_heap", recv({"DOWN", ref2}, 5000)[5])
    assert.is_nil(P.receive({"DOWN", ref}, 0))
  end)
end)

-- ======================================================================= format_status

describe("format_status", function()
  it("hides the secret in sys.get_status; the live state keeps it", function()
    local srv = track(gen_server.start("gs_secret", "hunter2"))
    local st = sys.get_status(srv)
    assert.are.same({user = "ann", password = "<hidden>"}, st[4].state)
    assert.are.same({user = "ann", password = "hunter2"}, gen_server.call(srv, "get"))
    assert.are.same({user = "ann", password = "hunter2"}, sys.get_state(srv))
  end)

  it("hides the secret in the terminating report", function()
    local out = child_output("secret_report.lua")
    assert.is_truthy(out:find("down\tcrashed", 1, true), out)
    assert.is_truthy(out:find("** Generic server <0.%d+.%d+> %(vault%) terminating"), out)
    assert.is_truthy(out:find('** Last message in was {"$gen_cast", "crash"}', 1, true), out)
    assert.is_truthy(out:find('** When Server state == {password = "<hidden>", user = "ann"}', 1, true), out)
    assert.is_truthy(out:find('** Reason for termination ==\n** {"crashed"}', 1, true), out)
    assert.is_nil(out:find("hunter2", 1, true), out)
  end)

  it("a format_status that raises or returns no table never shows the state", function()
    local srv = track(gen_server.start("gs_badstatus", "raise"))
    assert.are.equal("gs_badstatus.format_status crashed", sys.get_status(srv)[4].state)
    local srv2 = track(gen_server.start("gs_badstatus", "other"))
    assert.are.equal("gs_badstatus.format_status did not return a table", sys.get_status(srv2)[4].state)
  end)
end)
