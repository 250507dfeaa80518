-- process_spec.lua — spawning by "mod.fn", inherited paths, spawn_opt options, inspection.
local P = process
local ANY = P.ANY

local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."
local FIXTURES = here .. "/fixtures/process/"

local function recv(pattern, ms)
  local m = P.receive(pattern, ms or 2000)
  assert(m ~= nil, "nothing received")
  return m
end

local function down_of(pid, ref)
  local d = recv({"DOWN", ref, "process", pid})
  return d[5]
end

describe("spawning a \"module.function\"", function()
  local saved
  before_each(function()
    saved = package.path
    package.path = FIXTURES .. "?.lua;" .. package.path
  end)
  after_each(function()
    package.path = saved
    package.loaded.spawnmod = nil
  end)

  it("requires the module in the child and calls the function with copied arguments", function()
    local pid = P.spawn("spawnmod.echo", P.self(), 1, "two", {3})
    local m = recv({"echo"})
    assert.are.same({"echo", 1, "two", {3}}, m)
    assert.is_true(P.is_pid(pid))
  end)

  it("gives the child the parent's package.path and package.cpath", function()
    package.cpath = "/nowhere/?.so;" .. package.cpath
    P.spawn("spawnmod.report_paths", P.self())
    local m = recv({"paths"})
    assert.are.equal(package.path, m[2])
    assert.are.equal(package.cpath, m[3])
  end)

  it("passes the paths on to closures too", function()
    local me = P.self()
    P.spawn(function() P.send(me, {"paths", package.path}) end)
    assert.are.equal(package.path, recv({"paths"})[2])
  end)

  it("records the name as the initial call", function()
    local pid = P.spawn("spawnmod.echo", P.self())
    recv({"echo"})
    local pid2 = P.spawn_opt({}, function() P.receive() end)
    local info = P.info(pid2)
    assert.is_truthy(info.initial_call:find("process_spec.lua:%d+$"))
    P.exit(pid2, "kill")
    assert.is_nil(P.info(pid))
  end)

  it("ends the child with the require error when the module is missing", function()
    local pid, ref = P.spawn_monitor("no_such_module_x.run")
    local reason = down_of(pid, ref)
    assert.are.equal("string", type(reason))
    assert.is_truthy(reason:find("module 'no_such_module_x' not found", 1, true))
  end)

  it("ends the child when the field is not a function", function()
    local pid, ref = P.spawn_monitor("spawnmod.not_a_function")
    assert.are.equal("spawnmod.not_a_function is not a function", down_of(pid, ref))
    local pid2, ref2 = P.spawn_monitor("spawnmod.missing")
    assert.are.equal("spawnmod.missing is not a function", down_of(pid2, ref2))
  end)

  it("rejects a name without a module part", function()
    for _, bad in ipairs({"nodot", ".fn", "mod."}) do
      local ok, err = pcall(P.spawn, bad)
      assert.is_false(ok)
      assert.is_truthy(err:find("bad argument #1 to 'process.spawn' (\"module.function\" expected)", 1, true), err)
    end
    local ok, err = pcall(P.spawn, 42)
    assert.is_false(ok)
    assert.is_truthy(err:find("function or \"module.function\" expected, got number", 1, true), err)
  end)
end)

describe("spawn_opt", function()
  it("registers the child under `name` before it runs", function()
    local pid = P.spawn_opt({name = "spawn_opt_named"}, function(me)
      P.send(me, {"whereis", P.whereis("spawn_opt_named") == P.self()})
      P.receive()
    end, P.self())
    assert.are.equal(pid, P.whereis("spawn_opt_named"))
    assert.are.same({"whereis", true}, recv({"whereis"}))
    P.exit(pid, "kill")
  end)

  it("refuses a taken name and spawns nothing", function()
    local holder = P.spawn_opt({name = "spawn_opt_taken"}, function() P.receive() end)
    local before = {}
    for _, p in ipairs(P.list()) do before[p] = true end
    local ok, err = pcall(P.spawn_opt, {name = "spawn_opt_taken"}, function() end)
    assert.is_false(ok)
    assert.is_truthy(err:find("name 'spawn_opt_taken' is already registered", 1, true), err)
    for _, p in ipairs(P.list()) do assert.is_true(before[p] == true, "new process " .. p) end
    assert.are.equal(holder, P.whereis("spawn_opt_taken"))
    P.exit(holder, "kill")
  end)

  it("starts the child trapping exits with trap_exit", function()
    local me = P.self()
    local pid = P.spawn_opt({trap_exit = true, link = true}, function()
      P.send(me, {"got", P.receive(nil, 2000)})
    end)
    P.exit(pid, "boom")
    local m = recv({"got"})
    assert.are.same({"EXIT", me, "boom"}, m[2])
    P.unlink(pid)
  end)

  it("links with link = true and monitors with monitor = true", function()
    local pid, ref = P.spawn_opt({link = true, monitor = true}, function() P.receive() end)
    assert.is_true(P.is_ref(ref))
    assert.are.same({pid}, P.info(P.self()).links)
    P.unlink(pid)
    P.exit(pid, "kill")
    assert.are.equal("killed", down_of(pid, ref))
  end)

  it("rejects bad options", function()
    for _, opts in ipairs({{max_heap = 0}, {max_heap = 1.5}, {name = 3}, {name = "undefined"}}) do
      assert.is_false((pcall(P.spawn_opt, opts, function() end)))
    end
    assert.is_false((pcall(P.spawn_opt, nil, function() end)))
  end)
end)

describe("inspection", function()
  it("lists live processes, and is_pid/is_ref tell terms apart", function()
    local pid = P.spawn(function() P.receive() end)
    local found = false
    for _, p in ipairs(P.list()) do found = found or p == pid end
    assert.is_true(found)
    assert.is_true(P.is_pid(pid))
    assert.is_false(P.is_pid(P.make_ref()))
    assert.is_true(P.is_ref(P.make_ref()))
    assert.is_false(P.is_ref(pid))
    assert.is_false(P.is_pid("<0.1.0>"))
    assert.is_false(P.is_pid(nil))
    P.exit(pid, "kill")
  end)

  it("reports a process's name, links and queue in info", function()
    local pid = P.spawn_opt({name = "info_named"}, function() P.receive({"never"}) end)
    P.send(pid, "one")
    P.send(pid, "two")
    local info
    for _ = 1, 100 do
      info = P.info(pid)
      if info.message_queue_len == 2 and info.status == "waiting" then break end
      P.sleep(5)
    end
    assert.are.equal("info_named", info.name)
    assert.are.equal(2, info.message_queue_len)
    assert.are.equal("waiting", info.status)
    assert.are.same({}, info.links)
    assert.is_true(info.memory > 0)
    P.exit(pid, "kill")
  end)

  it("gives monotonic milliseconds that grow", function()
    local t0 = P.monotonic()
    P.sleep(20)
    local dt = P.monotonic() - t0
    assert.is_true(dt >= 19 and dt < 1000, tostring(dt))
    assert.are.equal("float", math.type(t0))
  end)
end)

describe("a child's standard libraries, opened when first reached", function()
  -- the child runs f and sends back {"r", results...}
  local function in_child(f)
    local me = P.self()
    P.spawn(function() P.send(me, {"r", f()}) end)
    return recv({"r"})
  end

  it("are there as globals, through require, and through strings", function()
    local m = in_child(function()
      local string_mt = getmetatable("").__index   -- before any string method
      return ("ab"):upper(), "10" + 1, -"2", "7" // "2", string_mt == string,
             require("table") == table, math.type(1), type(io.write), utf8.char(65),
             #("x"):rep(3), getmetatable("").__index == string
    end)
    assert.are.same({"r", "AB", 11, -2, 3, true, true, "integer", "function", "A", 3, true}, m)
  end)

  it("are all listed by pairs(_G), and _G has no metatable", function()
    local m = in_child(function()
      local seen = {}
      for k in pairs(_G) do seen[#seen + 1] = k end
      table.sort(seen)
      return table.concat(seen, " "), getmetatable(_G)
    end)
    local want = {}
    for _, k in ipairs({"string", "table", "math", "io", "os", "coroutine", "utf8", "debug",
                        "package", "require", "process", "print", "pairs"}) do
      want[k] = true
    end
    for k in m[2]:gmatch("%S+") do want[k] = nil end
    assert.are.same({}, want)
    assert.are.equal(2, #m)   -- getmetatable(_G) is nil
  end)

  it("keep a program's assignments: a global set to nil before first use stays nil", function()
    local m = in_child(function()
      pairs, string, tostring = nil, nil, "mine"
      return pairs == nil, string == nil, tostring, ("x"):rep(2), _VERSION, type(select)
    end)
    assert.are.same({"r", true, true, "mine", "xx", _VERSION, "function"}, m)
  end)

  it("stay reachable when a strict-mode metatable is put on _G", function()
    local m = in_child(function()
      setmetatable(_G, {__index = function(_, k) error("undeclared " .. k, 2) end})
      local ok, err = pcall(function() return undeclared_thing end)
      return string.rep("z", 2), os.time() > 0, ok, err:match("undeclared %S+")
    end)
    assert.are.same({"r", "zz", true, false, "undeclared undeclared_thing"}, m)
  end)

  it("include the process-adapted coroutine, os.exit and debug hooks", function()
    local m = in_child(function()
      local co = coroutine.wrap(function() coroutine.yield(1) return 2 end)
      local a, b = co(), co()
      debug.sethook(function() end, "", 1000)
      return a, b, debug.gethook() ~= nil, debug.getmetatable("").__index == string
    end)
    assert.are.same({"r", 1, 2, true, true}, m)
  end)

  it("are named by messages: base and process functions as upvalues reach a fresh child", function()
    local ts, ip, send, me = tostring, ipairs, P.send, P.self()
    P.spawn(function()
      local n = 0
      for _ in ip({1, 2}) do n = n + 1 end
      send(me, {"r", ts(12), n})
    end)
    assert.are.same({"r", "12", 2}, recv({"r"}))
  end)

  it("are named by messages: a function using string.format runs in a fresh child", function()
    local fmt, me = string.format, P.self()
    P.spawn(function() P.send(me, {"r", fmt("%03d", 7)}) end)
    assert.are.same({"r", "007"}, recv({"r"}))
  end)

  it("pass package.path on through a child that never opened package", function()
    local saved = package.path
    package.path = "/first/?.lua;" .. saved
    local me = P.self()
    P.spawn(function()
      P.spawn(function() P.send(me, {"r", package.path}) end)
    end)
    local m = recv({"r"})
    package.path = saved
    assert.are.equal("/first/?.lua;" .. saved, m[2])
  end)
end)

describe("spawning the same function again", function()
  it("sends its upvalues as they are now (only the bytecode is kept between sends)", function()
    local me, n = P.self(), 1
    local function report() P.send(me, {"n", n}) end
    P.spawn(report)
    assert.are.same({"n", 1}, recv({"n"}))
    n = 2
    P.spawn(report)
    assert.are.same({"n", 2}, recv({"n"}))
  end)
end)
