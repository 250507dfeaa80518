-- supervisor_spec.lua — behaviours/supervisor.lua: OTP.md §3 and scenarios 29–37.
--
-- The children are sup_worker gen_servers (tests/fixtures/supervisor/) that send the test
-- {"started", id, pid} from init and {"terminated", id, reason} from terminate; the test
-- compares those events, in order, with what OTP does. The test process traps exits and is
-- the parent of the supervisors it starts.
local support = dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "support.lua")
local supervisor = require "supervisor"
local gen_server = require "gen_server"
local sys = require "sys"
local pretty = require "pretty"

local P = process
local ANY = P.ANY
local FIXTURES = support.dir .. "/fixtures/supervisor/"

local function recv(pattern, ms)
  local m = P.receive(pattern, ms or 2000)
  assert(m ~= nil, "nothing received for " .. pretty.format(pattern))
  return m
end

--- A sup_worker child spec: opts for the worker, extra fields for the spec.
local function w(id, opts, extra)
  local spec = {id = id, start = {"sup_worker", "start_link", P.self(), id, opts or {}}}
  for k, v in pairs(extra or {}) do spec[k] = v end
  return spec
end

--- A worker that traps exits (its terminate runs on shutdown).
local function tw(id, extra, opts)
  local o = {trap = true}
  for k, v in pairs(opts or {}) do o[k] = v end
  return w(id, o, extra)
end

local started = {}   -- id -> pid of the last "started" event

local EVENT = P.any_of({"started"}, {"terminated"}, {"start"})

local function reason_text(r)
  if type(r) == "string" then return r end
  return pretty.format(r)
end

--- The next event as text: "started a", "terminated a shutdown", "start f 2"; nil if none.
local function event(ms)
  local m = P.receive(EVENT, ms or 2000)
  if m == nil then return nil end
  if m[1] == "started" then
    started[m[2]] = m[3]
    return "started " .. m[2]
  end
  if m[1] == "start" then return "start " .. m[2] .. " " .. m[3] end
  return "terminated " .. m[2] .. " " .. reason_text(m[3])
end

local function events(n)
  local got = {}
  for i = 1, n do
    got[i] = event()
    assert(got[i] ~= nil, "only " .. (i - 1) .. " events: " .. pretty.format(got))
  end
  return got
end

--- Nothing more happens for a while.
local function no_event(ms)
  local e = event(ms or 150)
  assert(e == nil, "unexpected event: " .. tostring(e))
end

local sups = {}

--- start_link from the test process, which must succeed; stopped after the test.
local function start(children, opts)
  local sup, err = supervisor.start_link(children, opts)
  assert(P.is_pid(sup), "start_link failed: " .. pretty.format(err))
  sups[#sups + 1] = sup
  return sup
end

local function pid_of(sup, id)
  for _, c in ipairs(supervisor.which_children(sup)) do
    if c[1] == id then return c[2] end
  end
  error("no child " .. tostring(id))
end

local function ids(sup)
  local list = {}
  for i, c in ipairs(supervisor.which_children(sup)) do list[i] = c[1] end
  return list
end

local function crash(pid, reason)
  gen_server.cast(pid, {"stop", reason})
end

local function packed(...) return table.pack(...) end

describe("supervisor", function()
  local saved_path, saved_trap

  setup(function()
    saved_path = package.path
    package.path = FIXTURES .. "?.lua;" .. package.path
  end)

  teardown(function()
    package.path = saved_path
  end)

  before_each(function()
    saved_trap = P.flag("trap_exit", true)
    started = {}
  end)

  after_each(function()
    for _, sup in ipairs(sups) do
      if P.alive(sup) and not pcall(supervisor.stop, sup, "normal", 5000) then
        P.exit(sup, "kill")
      end
    end
    sups = {}
    while P.receive(nil, 0) do end
    P.flag("trap_exit", saved_trap)
  end)

  -- ================================================================= OTP.md scenarios

  it("29: starts children one at a time in order, stops them in reverse order", function()
    local sup = start({tw "a", tw "b", tw "c"})
    assert.are.same({"started a", "started b", "started c"}, events(3))
    assert.are.same({{"c", started.c, "worker", {"sup_worker"}},
                     {"b", started.b, "worker", {"sup_worker"}},
                     {"a", started.a, "worker", {"sup_worker"}}}, supervisor.which_children(sup))
    local ref = P.monitor(sup)
    assert.are.equal("ok", supervisor.stop(sup))
    assert.are.same({"terminated c shutdown", "terminated b shutdown", "terminated a shutdown"},
                    events(3))
    assert.are.equal("normal", recv({"DOWN", ref})[5])
    recv({"EXIT", sup, "normal"})
    for _, id in ipairs({"a", "b", "c"}) do assert.is_false(P.alive(started[id])) end
  end)

  local function crash_b(strategy)
    local sup = start({tw "a", tw "b", tw "c"}, {strategy = strategy})
    events(3)
    local before = {a = started.a, b = started.b, c = started.c}
    crash(before.b, "boom")
    return sup, before
  end

  it("30: one_for_one restarts only the child that crashed", function()
    local sup, before = crash_b("one_for_one")
    assert.are.same({"terminated b boom", "started b"}, events(2))
    no_event()
    assert.are_not.equal(before.b, started.b)
    assert.are.same({{"c", before.c, "worker", {"sup_worker"}},
                     {"b", started.b, "worker", {"sup_worker"}},
                     {"a", before.a, "worker", {"sup_worker"}}}, supervisor.which_children(sup))
  end)

  it("30: one_for_all stops the others last first, then starts all in order", function()
    local sup, before = crash_b("one_for_all")
    assert.are.same({"terminated b boom", "terminated c shutdown", "terminated a shutdown",
                     "started a", "started b", "started c"}, events(6))
    no_event()
    for _, id in ipairs({"a", "b", "c"}) do
      assert.are_not.equal(before[id], started[id])
      assert.are.equal(started[id], pid_of(sup, id))
    end
  end)

  it("30: rest_for_one restarts the crashed child and those started after it", function()
    local sup, before = crash_b("rest_for_one")
    assert.are.same({"terminated b boom", "terminated c shutdown", "started b", "started c"},
                    events(4))
    no_event()
    assert.are.equal(before.a, pid_of(sup, "a"))
    assert.are_not.equal(before.b, pid_of(sup, "b"))
    assert.are_not.equal(before.c, pid_of(sup, "c"))
    assert.are.equal(started.c, pid_of(sup, "c"))
  end)

  it("31: more than 3 restarts in 5 s stop the children and the supervisor (shutdown)", function()
    local sup = start({tw "a", tw "b", tw "c"})
    events(3)
    for _ = 1, 3 do
      crash(pid_of(sup, "b"), "boom")
      assert.are.same({"terminated b boom", "started b"}, events(2))
    end
    assert.is_true(P.alive(sup))
    local a, c = started.a, started.c
    assert.are.equal(a, pid_of(sup, "a"))
    crash(pid_of(sup, "b"), "boom")
    assert.are.same({"terminated b boom", "terminated c shutdown", "terminated a shutdown"},
                    events(3))
    recv({"EXIT", sup, "shutdown"})
    no_event()
    assert.is_false(P.alive(sup))
    assert.is_false(P.alive(a))
    assert.is_false(P.alive(c))
  end)

  it("32: failed restart attempts count: 1 start + 3 failed restarts, then shutdown", function()
    local fails = {false, true, true, true, true, true, true, true}
    local sup = start({{id = "f", start = {"sup_flaky", "start_link", P.self(), "f", fails}}})
    assert.are.same({"start f 1", "started f"}, events(2))
    crash(started.f, "boom")
    assert.are.same({"terminated f boom", "start f 2", "start f 3", "start f 4"}, events(4))
    recv({"EXIT", sup, "shutdown"})
    no_event()
  end)

  it("33: restart types decide what an exit does", function()
    local sup = start({
      tw("tn", {restart = "transient"}),
      tw("tsx", {restart = "transient"}),
      tw("tsh", {restart = "transient"}),
      tw("tc", {restart = "transient"}),
      tw("tmp", {restart = "temporary"}),
      tw("pn", {restart = "permanent"}),
    })
    events(6)
    local function gone(id)
      return support.poll(2000, function() return pid_of(sup, id) == nil end)
    end
    -- transient, normal / {"shutdown", x} / "shutdown": not restarted, spec kept, no pid
    crash(started.tn, "normal")
    assert.are.same({"terminated tn normal"}, events(1))
    crash(started.tsx, {"shutdown", "x"})
    assert.are.same({'terminated tsx {"shutdown", "x"}'}, events(1))
    crash(started.tsh, "shutdown")
    assert.are.same({"terminated tsh shutdown"}, events(1))
    no_event()
    assert.is_true(gone("tn") and gone("tsx") and gone("tsh"))
    assert.are.same({"tsh", nil, "worker", {"sup_worker"}}, supervisor.which_children(sup)[4])
    -- transient crash: restarted
    local old = started.tc
    crash(old, "boom")
    assert.are.same({"terminated tc boom", "started tc"}, events(2))
    assert.are_not.equal(old, started.tc)
    assert.are.equal(started.tc, pid_of(sup, "tc"))
    -- temporary crash: not restarted, spec removed
    crash(started.tmp, "boom")
    assert.are.same({"terminated tmp boom"}, events(1))
    no_event()
    assert.is_truthy(support.poll(2000, function()
      return select(2, supervisor.get_childspec(sup, "tmp")) == "not_found"
    end))
    -- permanent normal exit: restarted
    old = started.pn
    crash(old, "normal")
    assert.are.same({"terminated pn normal", "started pn"}, events(2))
    assert.are.equal(started.pn, pid_of(sup, "pn"))
    assert.are.same({"pn", "tc", "tsh", "tsx", "tn"}, ids(sup))
    assert.are.same({specs = 5, active = 2, supervisors = 0, workers = 5},
                    supervisor.count_children(sup))
  end)

  it("34: shutdown: a timeout kills, brutal_kill kills, a non-trapping child just dies", function()
    local sup = start({
      tw("slow", {shutdown = 100}, {terminate_sleep = 500}),
      tw("brutal", {shutdown = "brutal_kill"}),
      w("plain"),
      tw("patient", {shutdown = "infinity"}, {terminate_sleep = 300}),
    })
    events(4)
    local function timed_terminate(id)
      local ref = P.monitor(started[id])
      local t0 = P.monotonic()
      assert.are.equal("ok", supervisor.terminate_child(sup, id))
      local dt = P.monotonic() - t0
      return recv({"DOWN", ref})[5], dt
    end
    local reason, dt = timed_terminate("slow")
    assert.are.equal("killed", reason)
    assert.is_true(dt >= 90 and dt < 1000, "killed after " .. dt .. " ms")
    assert.are.same({"terminated slow shutdown"}, events(1))   -- terminate began, then kill

    reason, dt = timed_terminate("brutal")
    assert.are.equal("killed", reason)
    assert.is_true(dt < 500, "killed after " .. dt .. " ms")
    no_event()                                                   -- no terminate

    reason = timed_terminate("plain")
    assert.are.equal("shutdown", reason)
    no_event()                                                   -- no terminate

    reason, dt = timed_terminate("patient")
    assert.are.equal("shutdown", reason)
    assert.is_true(dt >= 290, "waited " .. dt .. " ms")
    assert.are.same({"terminated patient shutdown"}, events(1))
    assert.are.same({specs = 4, active = 0, supervisors = 0, workers = 4},
                    supervisor.count_children(sup))
  end)

  it("35: a child failing at init stops the started ones and fails start_link", function()
    local sup, err = supervisor.start_link({tw "a", w("bad", {init = {"stop", "nope"}}), tw "c"})
    local expected = {"shutdown", {"failed_to_start_child", "bad", "nope"}}
    assert.is_nil(sup)
    assert.are.same(expected, err)
    assert.are.same({"started a", "terminated a shutdown"}, events(2))
    no_event()                                                   -- c never started
    local exit = recv({"EXIT", ANY, ANY})
    assert.are.same(expected, exit[3])
    assert.is_false(P.alive(exit[2]))
    assert.is_false(P.alive(started.a))
  end)

  it("36: the child API results of OTP.md §3.6", function()
    local sup = start({})
    -- start_child: new id, then the same id running
    local a = supervisor.start_child(sup, tw "a")
    assert.is_true(P.is_pid(a))
    assert.are.same({"started a"}, events(1))
    assert.are.equal(started.a, a)
    assert.are.same({n = 2, nil, {"already_started", a}}, packed(supervisor.start_child(sup, tw "a")))
    -- terminate_child: ok, ok again when stopped, not_found
    assert.are.same({n = 1, "ok"}, packed(supervisor.terminate_child(sup, "a")))
    assert.are.same({"terminated a shutdown"}, events(1))
    assert.are.same({n = 1, "ok"}, packed(supervisor.terminate_child(sup, "a")))
    assert.are.same({n = 2, nil, "not_found"}, packed(supervisor.terminate_child(sup, "zz")))
    -- start_child with the id of a stopped child
    assert.are.same({n = 2, nil, "already_present"}, packed(supervisor.start_child(sup, tw "a")))
    -- restart_child: stopped → pid; running; not_found
    local a2 = supervisor.restart_child(sup, "a")
    assert.is_true(P.is_pid(a2))
    assert.are_not.equal(a, a2)
    assert.are.same({"started a"}, events(1))
    assert.are.same({n = 2, nil, "running"}, packed(supervisor.restart_child(sup, "a")))
    assert.are.same({n = 2, nil, "not_found"}, packed(supervisor.restart_child(sup, "zz")))
    -- delete_child: running; ok once stopped; not_found
    assert.are.same({n = 2, nil, "running"}, packed(supervisor.delete_child(sup, "a")))
    supervisor.terminate_child(sup, "a")
    events(1)
    assert.are.same({n = 1, "ok"}, packed(supervisor.delete_child(sup, "a")))
    assert.are.same({n = 2, nil, "not_found"}, packed(supervisor.delete_child(sup, "a")))
    assert.are.same({n = 2, nil, "not_found"}, packed(supervisor.get_childspec(sup, "a")))
    -- a child that returns ignore: {ok, undefined} → nil with no error; spec kept
    assert.are.same({n = 1, nil}, packed(supervisor.start_child(sup, w("ig", {init = "ignore"}))))
    assert.are.same({{"ig", nil, "worker", {"sup_worker"}}}, supervisor.which_children(sup))
    assert.are.same({specs = 1, active = 0, supervisors = 0, workers = 1},
                    supervisor.count_children(sup))
    assert.are.same({n = 2, nil, "already_present"},
                    packed(supervisor.start_child(sup, w("ig", {init = "ignore"}))))
    assert.are.same({n = 1, nil}, packed(supervisor.restart_child(sup, "ig")))
    -- a temporary child that returns ignore is not kept
    assert.are.same({n = 1, nil}, packed(supervisor.start_child(sup,
      w("tig", {init = "ignore"}, {restart = "temporary"}))))
    assert.are.same({n = 2, nil, "not_found"}, packed(supervisor.get_childspec(sup, "tig")))
    -- the start fails: {error, {Reason, Spec}}, the spec is dropped
    local full = {id = "bad", start = {"sup_worker", "start_link", P.self(), "bad",
                                       {init = {"stop", "nope"}}},
                  restart = "permanent", shutdown = 5000, type = "worker", modules = {"sup_worker"}}
    assert.are.same({n = 2, nil, {"nope", full}},
                    packed(supervisor.start_child(sup, w("bad", {init = {"stop", "nope"}}))))
    assert.are.same({n = 2, nil, "not_found"}, packed(supervisor.get_childspec(sup, "bad")))
    -- no start function
    assert.are.same({n = 2, nil, "missing_start"}, packed(supervisor.start_child(sup, {id = "m"})))
    assert.are.same({n = 2, nil, {"invalid_restart_type", "often"}},
                    packed(supervisor.start_child(sup, tw("o", {restart = "often"}))))
    -- get_childspec: the full spec
    supervisor.start_child(sup, tw("b", {restart = "transient", shutdown = 300}))
    events(1)
    assert.are.same({id = "b", start = {"sup_worker", "start_link", P.self(), "b", {trap = true}},
                     restart = "transient", shutdown = 300, type = "worker",
                     modules = {"sup_worker"}},
                    supervisor.get_childspec(sup, "b"))
    -- terminate_child on a temporary child removes its spec
    supervisor.start_child(sup, tw("t", {restart = "temporary"}))
    events(1)
    assert.are.same({n = 1, "ok"}, packed(supervisor.terminate_child(sup, "t")))
    assert.are.same({"terminated t shutdown"}, events(1))
    assert.are.same({n = 2, nil, "not_found"}, packed(supervisor.get_childspec(sup, "t")))
    assert.are.same({"b", "ig"}, ids(sup))
  end)

  it("37: one_for_all drops a temporary sibling; its own crash changes nothing", function()
    local sup = start({tw "p", tw("t", {restart = "temporary"})}, {strategy = "one_for_all"})
    events(2)
    local p = started.p
    crash(p, "boom")
    assert.are.same({"terminated p boom", "terminated t shutdown", "started p"}, events(3))
    no_event()
    assert.are.same({{"p", started.p, "worker", {"sup_worker"}}}, supervisor.which_children(sup))
    assert.are_not.equal(p, started.p)
    -- a temporary child crashing by itself: nothing else happens
    p = started.p
    supervisor.start_child(sup, tw("t", {restart = "temporary"}))
    assert.are.same({"started t"}, events(1))
    crash(started.t, "boom")
    assert.are.same({"terminated t boom"}, events(1))
    no_event()
    assert.is_truthy(support.poll(2000, function()
      return select(2, supervisor.get_childspec(sup, "t")) == "not_found"
    end))
    assert.are.same({{"p", p, "worker", {"sup_worker"}}}, supervisor.which_children(sup))
  end)

  -- ================================================================= beyond the scenarios

  it("restarts a whole subtree with new pids when a child supervisor dies", function()
    local root = start({tw "w1", {"sup_tree", P.self()}, tw "w2"})
    assert.are.same({"started w1", "started x", "started y", "started w2"}, events(4))
    local old = {w1 = started.w1, x = started.x, y = started.y, w2 = started.w2}
    local sub = pid_of(root, "sub")
    assert.are.same({{"w2", old.w2, "worker", {"sup_worker"}},
                     {"sub", sub, "supervisor", {"sup_tree"}},
                     {"w1", old.w1, "worker", {"sup_worker"}}}, supervisor.which_children(root))
    assert.are.same({specs = 3, active = 3, supervisors = 1, workers = 2},
                    supervisor.count_children(root))
    assert.are.same({id = "sub", start = {"sup_tree", "start_link", P.self()}, restart = "permanent",
                     shutdown = "infinity", type = "supervisor", modules = {"sup_tree"}},
                    supervisor.get_childspec(root, "sub"))
    P.exit(sub, "kill")
    local got = events(4)
    local order = {}
    for _, e in ipairs(got) do
      if e:find("^started") then order[#order + 1] = e end
    end
    table.sort(got)
    assert.are.same({"started x", "started y", "terminated x killed", "terminated y killed"}, got)
    assert.are.same({"started x", "started y"}, order)
    no_event()
    local sub2 = pid_of(root, "sub")
    assert.are_not.equal(sub, sub2)
    assert.are.equal(old.w1, pid_of(root, "w1"))
    assert.are.equal(old.w2, pid_of(root, "w2"))
    assert.are.same({{"y", started.y, "worker", {"sup_worker"}},
                     {"x", started.x, "worker", {"sup_worker"}}}, supervisor.which_children(sub2))
    assert.are_not.equal(old.x, started.x)
    assert.are_not.equal(old.y, started.y)
    assert.is_false(P.alive(old.x))
    assert.is_false(P.alive(old.y))
    -- shutting the root down goes bottom-up, last started first
    local ref = P.monitor(sub2)
    assert.are.equal("ok", supervisor.stop(root))
    assert.are.same({"terminated w2 shutdown", "terminated y shutdown", "terminated x shutdown",
                     "terminated w1 shutdown"}, events(4))
    assert.are.equal("shutdown", recv({"DOWN", ref})[5])
    for _, id in ipairs({"w1", "x", "y", "w2"}) do assert.is_false(P.alive(started[id])) end
  end)

  it("lists children most recently added first; a restart keeps the place", function()
    local sup = start({tw "a", tw "b", tw "c"})
    events(3)
    assert.are.same({"c", "b", "a"}, ids(sup))
    supervisor.start_child(sup, tw "d")
    events(1)
    assert.are.same({"d", "c", "b", "a"}, ids(sup))
    crash(started.b, "boom")
    events(2)
    assert.are.same({"d", "c", "b", "a"}, ids(sup))
    supervisor.terminate_child(sup, "c")
    supervisor.restart_child(sup, "c")
    events(2)
    assert.are.same({"d", "c", "b", "a"}, ids(sup))
    supervisor.terminate_child(sup, "b")
    supervisor.delete_child(sup, "b")
    supervisor.start_child(sup, tw "b")
    events(2)
    assert.are.same({"b", "d", "c", "a"}, ids(sup))
    -- and stops them in that order
    supervisor.stop(sup)
    assert.are.same({"terminated b shutdown", "terminated d shutdown", "terminated c shutdown",
                     "terminated a shutdown"}, events(4))
  end)

  it("counts specs, active children, supervisors and workers", function()
    local sup = start({tw "a", w("ig", {init = "ignore"}),
                       supervisor.child_spec({{tw "x"}}, {id = "inner"}), tw "b"})
    events(3)
    assert.are.same({specs = 4, active = 3, supervisors = 1, workers = 3},
                    supervisor.count_children(sup))
    supervisor.terminate_child(sup, "b")
    events(1)
    assert.are.same({specs = 4, active = 2, supervisors = 1, workers = 3},
                    supervisor.count_children(sup))
    supervisor.delete_child(sup, "b")
    assert.are.same({specs = 3, active = 2, supervisors = 1, workers = 2},
                    supervisor.count_children(sup))
  end)

  it("expands the shorthands \"mod\" and {\"mod\", arg}, with and without child_spec", function()
    P.register("supervisor_spec", P.self())
    local ok, err = pcall(function()
      local sup = start({"sup_short", {"sup_short", "k"}, "sup_plain",
                         supervisor.child_spec({"sup_plain", 7}, {id = "p7", restart = "temporary"})})
      assert.are.same({"started sup_short:none", "started sup_short:k", "started sup_plain:nil",
                       "started sup_plain:7"}, events(4))
      assert.are.same({id = {"sup_short", "k"}, start = {"sup_short", "start_link", "k"},
                       restart = "transient", shutdown = 1000, type = "worker",
                       modules = {"sup_short"}}, supervisor.get_childspec(sup, {"sup_short", "k"}))
      assert.are.same({id = {"sup_short", "none"}, start = {"sup_short", "start_link", "none"},
                       restart = "transient", shutdown = 1000, type = "worker",
                       modules = {"sup_short"}}, supervisor.get_childspec(sup, {"sup_short", "none"}))
      assert.are.same({id = "sup_plain", start = {"sup_plain", "start_link"},
                       restart = "permanent", shutdown = 5000, type = "worker",
                       modules = {"sup_plain"}}, supervisor.get_childspec(sup, "sup_plain"))
      assert.are.same({id = "p7", start = {"sup_plain", "start_link", 7},
                       restart = "temporary", shutdown = 5000, type = "worker",
                       modules = {"sup_plain"}}, supervisor.get_childspec(sup, "p7"))
      assert.are.same({"p7", "sup_plain", {"sup_short", "k"}, {"sup_short", "none"}}, ids(sup))
      supervisor.stop(sup)
      events(4)
    end)
    P.unregister("supervisor_spec")
    assert(ok, err)
  end)

  it("child_spec merges overrides and describes a nested supervisor", function()
    assert.are.same({id = "x", start = {"sup_plain", "start_link"}},
                    supervisor.child_spec("sup_plain", {id = "x"}))
    assert.are.same({id = {"sup_short", 1}, start = {"sup_short", "start_link", 1},
                     restart = "transient", shutdown = "brutal_kill"},
                    supervisor.child_spec({"sup_short", 1}, {shutdown = "brutal_kill"}))
    assert.are.same({id = "w", start = {"m", "start_link"}, type = "supervisor"},
                    supervisor.child_spec({id = "w", start = {"m", "start_link"}},
                                          {type = "supervisor"}))
    local ok, err = pcall(supervisor.child_spec, tw "a", {color = "red"})
    assert.is_false(ok)
    assert.is_truthy(err:find("unknown key 'color' in child specification override", 1, true))
    ok, err = pcall(supervisor.child_spec, tw "a", {restart = "often"})
    assert.is_false(ok)
    assert.is_truthy(err:find('invalid child specification: {"invalid_restart_type", "often"}', 1, true))
    local children, opts = {tw "x"}, {strategy = "one_for_all"}
    assert.are.same({id = "supervisor", start = {"supervisor", "start_link", children, opts},
                     type = "supervisor", shutdown = "infinity"},
                    supervisor.child_spec({children, opts}))
    -- the supervisor module itself as a shorthand child
    local root = start({{"supervisor", {{tw "x", tw "y"}, {strategy = "rest_for_one"}}}})
    assert.are.same({"started x", "started y"}, events(2))
    local inner = pid_of(root, "supervisor")
    assert.are.same({{"supervisor", inner, "supervisor", {"supervisor"}}},
                    supervisor.which_children(root))
    assert.are.equal("rest_for_one", sys.get_state(inner).strategy)
    assert.are.equal("infinity", supervisor.get_childspec(root, "supervisor").shutdown)
  end)

  it("registers a supervisor by name", function()
    local sup = start({tw "a"}, {name = "sup_spec_named"})
    events(1)
    assert.are.equal(sup, P.whereis("sup_spec_named"))
    assert.are.same({{"a", started.a, "worker", {"sup_worker"}}},
                    supervisor.which_children("sup_spec_named"))
    assert.are.same({n = 2, nil, {"already_started", sup}},
                    packed(supervisor.start_link({tw "b"}, {name = "sup_spec_named"})))
    no_event()
    assert.are.equal("ok", supervisor.stop("sup_spec_named"))
    events(1)
    assert.is_nil(P.whereis("sup_spec_named"))
    local ok, err = pcall(supervisor.which_children, "sup_spec_named")
    assert.is_false(ok)
    assert.are.same({"noproc", {"gen_server", "call",
                     {"sup_spec_named", {"which_children"}, "infinity"}}}, err)
  end)

  it("answers sys.get_state and sys.get_status", function()
    local sup = start({tw "a", tw "b"}, {strategy = "rest_for_one", intensity = 7, period = 9})
    events(2)
    local s = sys.get_state(sup)
    assert.are.equal("rest_for_one", s.strategy)
    assert.are.equal(7, s.intensity)
    assert.are.equal(9, s.period)
    assert.are.equal(2, #s.children)
    assert.are.equal("a", s.children[1].id)
    assert.are.equal(started.a, s.children[1].pid)
    assert.are.equal("b", s.children[2].spec.id)
    local st = sys.get_status(sup)
    assert.are.equal("status", st[1])
    assert.are.equal(sup, st[2])
    assert.are.equal("supervisor", st[4].module)
    assert.are.equal("running", st[4].status)
  end)

  it("shows a child whose restart failed as \"restarting\" until a retry works", function()
    local fails = {false, true, true, true}
    local sup = start({tw "a", {id = "f", start = {"sup_flaky", "start_link", P.self(), "f",
                                                     fails, 250}}}, {intensity = 10})
    assert.are.same({"started a", "start f 1", "started f"}, events(3))
    crash(started.f, "boom")
    assert.are.same({"terminated f boom", "start f 2"}, events(2))
    -- the call arrives while start 2 runs, so it is answered before the retry
    assert.are.same({{"f", "restarting", "worker", {"sup_flaky"}},
                     {"a", started.a, "worker", {"sup_worker"}}}, supervisor.which_children(sup))
    assert.are.same({"start f 3"}, events(1))
    assert.are.same({n = 2, nil, "restarting"}, packed(supervisor.restart_child(sup, "f")))
    assert.are.same({"start f 4"}, events(1))
    assert.are.same({n = 2, nil, "restarting"}, packed(supervisor.delete_child(sup, "f")))
    assert.are.same({"start f 5", "started f"}, events(2))
    assert.are.equal(started.f, pid_of(sup, "f"))
    assert.are.same({specs = 2, active = 2, supervisors = 0, workers = 2},
                    supervisor.count_children(sup))
  end)

  it("terminate_child stops the retries of a restarting child", function()
    local fails = {false, true, true, true, true, true}
    local sup = start({{id = "f", start = {"sup_flaky", "start_link", P.self(), "f", fails, 250}}},
                      {intensity = 10})
    assert.are.same({"start f 1", "started f"}, events(2))
    crash(started.f, "boom")
    assert.are.same({"terminated f boom", "start f 2"}, events(2))
    assert.are.same({n = 1, "ok"}, packed(supervisor.terminate_child(sup, "f")))
    no_event(300)
    assert.are.same({{"f", nil, "worker", {"sup_flaky"}}}, supervisor.which_children(sup))
    assert.is_true(P.alive(sup))
  end)

  local function flaky_trio(strategy)
    local f = {id = "f", start = {"sup_flaky", "start_link", P.self(), "f", {false, true}}}
    local sup = start({tw "a", f, tw "c"}, {strategy = strategy})
    assert.are.same({"started a", "start f 1", "started f", "started c"}, events(4))
    crash(started.a, "boom")
    return sup
  end

  it("retries a failed one_for_all restart by restarting all the children again", function()
    local sup = flaky_trio("one_for_all")
    assert.are.same({"terminated a boom", "terminated c shutdown", "terminated f shutdown",
                     "started a", "start f 2",
                     "terminated a shutdown", "started a", "start f 3", "started f", "started c"},
                    events(10))
    no_event()
    assert.are.same({"c", "f", "a"}, ids(sup))
    assert.are.equal(started.f, pid_of(sup, "f"))
  end)

  it("retries a failed rest_for_one restart from the child that failed", function()
    local sup = flaky_trio("rest_for_one")
    local a = started.a
    assert.are.same({"terminated a boom", "terminated c shutdown", "terminated f shutdown",
                     "started a", "start f 2", "start f 3", "started f", "started c"}, events(8))
    no_event()
    assert.are_not.equal(a, started.a)
    assert.are.equal(started.a, pid_of(sup, "a"))
    assert.are.equal(started.c, pid_of(sup, "c"))
  end)

  it("with intensity 0 the first crash brings the supervisor down", function()
    local sup = start({tw "a", tw "b"}, {intensity = 0})
    events(2)
    crash(started.a, "boom")
    assert.are.same({"terminated a boom", "terminated b shutdown"}, events(2))
    recv({"EXIT", sup, "shutdown"})
  end)

  it("forgets restarts older than the period", function()
    local sup = start({tw "a"}, {intensity = 1, period = 1})
    events(1)
    crash(started.a, "boom")
    assert.are.same({"terminated a boom", "started a"}, events(2))
    P.sleep(1100)
    crash(started.a, "boom")
    assert.are.same({"terminated a boom", "started a"}, events(2))
    assert.is_true(P.alive(sup))
    crash(started.a, "boom")
    assert.are.same({"terminated a boom"}, events(1))
    recv({"EXIT", sup, "shutdown"})
  end)

  it("stops its children and exits with the parent's reason when the parent exits", function()
    local me = P.self()
    local parent = P.spawn(function()
      local sup = require("supervisor").start_link({
        {id = "a", start = {"sup_worker", "start_link", me, "a", {trap = true}}},
        {id = "b", start = {"sup_worker", "start_link", me, "b", {trap = true}}}})
      P.send(me, {"sup", sup})
      P.receive()
    end)
    local sup = recv({"sup"})[2]
    assert.are.same({"started a", "started b"}, events(2))
    local ref = P.monitor(sup)
    P.exit(parent, {"shutdown", "bye"})
    assert.are.same({"terminated b shutdown", "terminated a shutdown"}, events(2))
    assert.are.same({"shutdown", "bye"}, recv({"DOWN", ref})[5])
  end)

  it("stop(sup, reason) shuts the children down and exits with reason", function()
    local sup = start({tw "a"})
    events(1)
    assert.are.equal("ok", supervisor.stop(sup, {"shutdown", "done"}))
    assert.are.same({"terminated a shutdown"}, events(1))
    assert.are.same({"shutdown", "done"}, recv({"EXIT", sup, ANY})[3])
    local ok, err = pcall(supervisor.stop, sup)
    assert.is_false(ok)
    assert.are.same({"noproc", {"gen_server", "stop", {sup, "normal", "infinity"}}}, err)
  end)

  it("rejects duplicate ids, invalid specs and invalid options", function()
    local sup, err = supervisor.start_link({tw "a", tw "b", tw "a"})
    assert.is_nil(sup)
    assert.are.same({"start_spec", {"duplicate_child_name", "a"}}, err)
    assert.are.same({"start_spec", {"duplicate_child_name", "a"}}, recv({"EXIT", ANY, ANY})[3])
    no_event()                                                   -- nothing was started
    sup, err = supervisor.start_link({tw "a", tw("b", {shutdown = -1})})
    assert.is_nil(sup)
    assert.are.same({"start_spec", {"invalid_shutdown", -1}}, err)
    recv({"EXIT", ANY, ANY})
    no_event()
    assert.are.same({n = 2, nil, {"supervisor_data", {"invalid_strategy", "one_for_some"}}},
                    packed(supervisor.start_link({}, {strategy = "one_for_some"})))
    assert.are.same({n = 2, nil, {"supervisor_data", {"invalid_intensity", -1}}},
                    packed(supervisor.start_link({}, {intensity = -1})))
    assert.are.same({n = 2, nil, {"supervisor_data", {"invalid_period", 0}}},
                    packed(supervisor.start_link({}, {period = 0})))
    assert.is_nil(P.receive({"EXIT"}, 50))                       -- nothing was spawned
    local ok, err2 = pcall(supervisor.start_link, "a")
    assert.is_false(ok)
    assert.is_truthy(err2:find("bad argument #1 to 'start_link' (table of child specs expected, got string)",
                              1, true))
  end)

  it("writes supervisor reports for crashes, failed starts, shutdown errors, intensity", function()
    local script = os.tmpname()
    local errfile = os.tmpname()
    support.write_file(script, [[
package.path = ]] .. string.format("%q", FIXTURES .. "?.lua;") .. [[ .. package.path
local supervisor = require "supervisor"
local gen_server = require "gen_server"
process.flag("trap_exit", true)
local me = process.self()
local function w(id, o, x)
  local s = {id = id, start = {"sup_worker", "start_link", me, id, o}}
  for k, v in pairs(x or {}) do s[k] = v end
  return s
end
local function started(id) return process.receive({"started", id}, 2000)[3] end
local sup = supervisor.start_link({w("a", {trap = true}), w("n", {trap = true})},
                                  {name = "rep_sup", intensity = 2})
local a, n = started("a"), started("n")
gen_server.cast(a, {"stop", "boom"}); a = started("a")
gen_server.cast(n, {"stop", "normal"}); n = started("n")
gen_server.cast(a, {"stop", "boom"})
assert(process.receive({"EXIT", sup, "shutdown"}, 2000))
assert(supervisor.start_link({w("bad", {init = {"stop", "nope"}})}) == nil)
sup = supervisor.start_link({w("slow", {trap = true, terminate_sleep = 300}, {shutdown = 50})})
started("slow")
supervisor.stop(sup)
]])
    local cmd = "timeout 20 " .. support.shell_quote(support.moonbeam) .. " " ..
                support.shell_quote(script) .. " 2>" .. support.shell_quote(errfile) .. " >/dev/null"
    local okrun = os.execute(cmd)
    local text = support.read_file(errfile)
    os.remove(script)
    os.remove(errfile)
    assert.is_true(okrun, text)
    local reports, current = {}, nil   -- the bodies of the SUPERVISOR REPORT entries
    for line in text:gmatch("[^\n]*") do
      local header = line:match("^=([%u ]+)==== .* ===$")
      if header then
        current = header == "SUPERVISOR REPORT" and {} or nil
        if current then reports[#reports + 1] = current end
      elseif current then
        current[#current + 1] = line
      end
    end
    for i, r in ipairs(reports) do reports[i] = table.concat(r, "\n") end
    local function context(body)
      return body:match("errorContext: (%S+)") .. " " .. body:match("reason: ([^\n]+)")
    end
    local got = {}
    for i, r in ipairs(reports) do got[i] = context(r) end
    assert.are.same({'child_terminated "boom"', 'child_terminated "boom"',
                     'shutdown "reached_max_restart_intensity"', 'start_error "nope"',
                     'shutdown_error "killed"'}, got)
    assert.is_truthy(reports[1]:find("    supervisor: rep_sup\n", 1, true))
    assert.is_truthy(reports[1]:find('{"id", "a"}', 1, true))
    assert.is_truthy(reports[1]:find('{"restart_type", "permanent"}', 1, true))
    assert.is_truthy(reports[1]:find('{"shutdown", 5000}', 1, true))
    assert.is_truthy(reports[1]:find('{"child_type", "worker"}', 1, true))
    assert.is_truthy(reports[1]:find('{"mfargs", {"sup_worker", "start_link", ', 1, true))
    assert.is_truthy(reports[5]:find('{"id", "slow"}', 1, true))
  end)
end)
