-- code_spec.lua — the code server and hot reload (DESIGN.md "Code server and hot reload",
-- OTP.md §6 and scenarios 50-52): require compiles a module once for the whole runtime,
-- code.reload publishes a new version, processes switch at their next receive with their
-- module table updated in place, functions on a stack stay in their version, at most two
-- versions live (users of the older one are killed by a third version or by code.purge),
-- gen_servers migrate their state with code_change, and a failed reload changes nothing.
--
-- The tests write modules into a temporary directory put on package.path (the templates
-- are in fixtures/code, "@VSN@" and "@CC@" replaced) and rewrite them to make new versions.
-- The code server lives as long as the runtime, so every test uses module names of its own.
-- This process (the test runner) never requires those modules, so that it never counts as
-- one of their users; it only reloads them. Tests that must watch stderr, or change the
-- current directory, run a child moonbeam on fixtures/code/*.lua scripts.
local P = process
local ANY = P.ANY
local code = require "code"
local gen_server = require "gen_server"
local sys = require "sys"
require "pretty"   -- so that the embedded module is loaded in this runtime
local support = dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "support.lua")

local FIX = support.dir .. "/fixtures/code"
local shell_quote = support.shell_quote
local me = P.self()

-- ===================================================================== helpers

local TMP = os.tmpname()
os.remove(TMP)
assert(os.execute("mkdir -p " .. shell_quote(TMP)))
TMP = support.physical_dir(TMP)
package.path = TMP .. "/?.lua;" .. package.path

local spawned = {}
local seq = 0

local function track(pid)
  spawned[#spawned + 1] = pid
  return pid
end

--- A module name no other test uses.
local function modname(tag)
  seq = seq + 1
  return ("cs%d_%s"):format(seq, tag)
end

local function path_of(name) return TMP .. "/" .. name .. ".lua" end

--- Writes name's source file.
local function install(name, src) support.write_file(path_of(name), src) end

--- A fixture's text with "@K@" replaced by vars[K].
local function template(file, vars)
  local s = support.read_file(FIX .. "/" .. file)
  for k, v in pairs(vars) do s = s:gsub("@" .. k .. "@", v) end
  return s
end

local function install_loop(name, vsn) install(name, template("loop.lua", {VSN = vsn})) end

local function install_server(name, vsn, cc)
  install(name, template("server.lua", {VSN = vsn, CC = cc or "none"}))
end

--- A tiny module: M.v() returns v; `prefix` runs first when the chunk loads.
local function simple(v, prefix)
  return (prefix or "") .. "local M = {}\nfunction M.v() return '" .. v .. "' end\nreturn M\n"
end

local function recv(pattern, ms)
  local m = P.receive(pattern, ms or 2000)
  assert(m ~= nil, "nothing received")
  return m
end

--- Asks a loop.lua process which version answers.
local function ask(pid)
  P.send(pid, {"ask", me})
  return recv({"answer", pid, ANY})[3]
end

--- Spawns "mod.fn" and monitors it: pid, ref.
local function start_loop(name, fn)
  local pid, ref = P.spawn_monitor(name .. "." .. fn)
  return track(pid), ref
end

--- The reason in the DOWN of ref (nil if none comes within ms).
local function down(ref, ms)
  local m = P.receive({"DOWN", ref, ANY, ANY, ANY}, ms or 2000)
  return m and m[5]
end

--- A process that requires name, says {"ready", pid}, then answers every {"ask", from}
-- with {"answer", pid, probe(M)}; probe runs in that process, M is its module table.
local function start_holder(name, probe)
  local pid, ref = P.spawn_monitor(function()
    local M = require(name)
    P.send(me, {"ready", P.self()})
    while true do
      local msg = P.receive(nil, 10000)
      if msg == nil then return end
      P.send(msg[2], {"answer", P.self(), probe(M)})
    end
  end)
  track(pid)
  recv({"ready", pid})
  return pid, ref
end

--- Requires name in a new process and returns probe(module) from there.
local function in_new_process(name, probe)
  local pid = track(P.spawn(function() P.send(me, {"fresh", P.self(), probe(require(name))}) end))
  return recv({"fresh", pid, ANY})[3]
end

local function start_server(name, arg)
  local pid = gen_server.start(name, arg)
  assert(P.is_pid(pid), "start failed")
  return track(pid), P.monitor(pid)
end

--- Runs a fixtures/code script in a child moonbeam, from directory cwd, with args.
-- Returns {status=, out=, err=}.
local function run_child(cwd, script, ...)
  local words = {shell_quote(support.moonbeam), shell_quote(FIX .. "/" .. script)}
  for _, a in ipairs({...}) do words[#words + 1] = shell_quote(a) end
  local out_path, err_path = os.tmpname(), os.tmpname()
  local cmd = "cd " .. shell_quote(cwd) .. " && env -u LUA_INIT -u LUA_INIT_5_4 timeout 20 "
    .. table.concat(words, " ") .. " >" .. out_path .. " 2>" .. err_path .. " </dev/null"
  local _, _, status = os.execute(cmd)
  local r = {status = status, out = support.read_file(out_path), err = support.read_file(err_path)}
  os.remove(out_path)
  os.remove(err_path)
  return r
end

--- A new empty directory under TMP.
local function subdir(tag)
  local d = TMP .. "/" .. modname(tag)
  assert(os.execute("mkdir -p " .. shell_quote(d)))
  return d
end

local function entry_of(name)
  for _, e in ipairs(code.loaded()) do
    if e.name == name then return e end
  end
end

before_each(function()
  while P.receive(nil, 0) do end
end)

after_each(function()
  for _, pid in ipairs(spawned) do P.exit(pid, "kill") end
  spawned = {}
end)

teardown(function()
  os.execute("rm -rf " .. shell_quote(TMP))
end)

-- ===================================================================== scenario 50

describe("hot reload, qualified vs local loop (scenario 50)", function()
  it("moves the qualified loop to v2 after its iteration in progress; keeps the local one in v1 until v3 kills it; purge kills the last v2 user", function()
    local name = modname("loop")
    install_loop(name, "v1")
    local p1, r1 = start_loop(name, "loop")
    local p2, r2 = start_loop(name, "local_loop")
    assert.are.equal("v1", ask(p1))
    assert.are.equal("v1", ask(p2))
    assert.are.equal(1, code.version(name))

    install_loop(name, "v2")
    assert.are.equal(2, code.reload(name))
    assert.are.equal(2, code.version(name))
    -- P1 is inside v1's M.loop: that iteration finishes in v1, the next M.loop() is v2's
    assert.are.same({"v1", "v2", "v2"}, {ask(p1), ask(p1), ask(p1)})
    assert.are.same({"v1", "v1"}, {ask(p2), ask(p2)})
    assert.is_true(code.check_process_code(p2, name))
    assert.is_false(code.check_process_code(p1, name))

    install_loop(name, "v3")
    assert.are.equal(3, code.reload(name))
    assert.are.equal("killed", down(r2))
    assert.is_true(P.alive(p1))
    assert.is_nil(down(r1, 100))
    -- P1 waits in v2's M.loop: v2 is the old version now, and P1 its user
    assert.is_true(code.check_process_code(p1, name))
    assert.is_false(code.soft_purge(name))
    assert.is_true(P.alive(p1))
    assert.is_true(code.purge(name))
    assert.are.equal("killed", down(r1))
    -- nothing old is left
    assert.is_true(code.soft_purge(name))
    assert.is_false(code.purge(name))
    assert.are.equal(3, code.version(name))
  end)

  it("a process that has left v1 code is not an old-code user (soft_purge true, nobody killed)", function()
    local name = modname("left")
    install_loop(name, "v1")
    local p1, r1 = start_loop(name, "loop")
    assert.are.equal("v1", ask(p1))
    install_loop(name, "v2")
    assert.are.equal(2, code.reload(name))
    assert.are.same({"v1", "v2", "v2"}, {ask(p1), ask(p1), ask(p1)})
    assert.is_true(code.soft_purge(name))
    assert.is_false(code.purge(name))
    assert.are.equal("v2", ask(p1))
    assert.is_nil(down(r1, 100))
  end)
end)

describe("purge right after a reload", function()
  it("asks the users: idle processes that have not switched yet are neither killed nor lingering", function()
    local name = modname("fresh_purge")
    install(name, simple("v1"))
    local pids = {}
    for i = 1, 20 do pids[i] = start_holder(name, function(M) return M.v() end) end
    install(name, simple("v2"))
    assert.are.equal(2, code.reload(name))
    assert.is_true(code.soft_purge(name))   -- right away: nobody runs v1 code
    assert.is_false(code.purge(name))
    for i = 1, 20 do assert.are.equal("v2", ask(pids[i])) end
    install(name, simple("v3"))
    assert.are.equal(3, code.reload(name))
    assert.is_false(code.purge(name))
    for i = 1, 20 do assert.are.equal("v3", ask(pids[i])) end
  end)

  it("a process busy in the old version's code is killed, and purge says so", function()
    local name = modname("busy_purge")
    install(name, simple("v1", "function spin(t) local d = require('process').monotonic() + t "
                          .. "while require('process').monotonic() < d do end end\n")
                   :gsub("return M\n$", "function M.spin(t) spin(t) end\nreturn M\n"))
    local pid, ref = P.spawn_monitor(function()
      local M = require(name)
      P.send(me, "spinning")
      M.spin(5000)
    end)
    track(pid)
    recv(function(m) return m == "spinning" end)
    install(name, simple("v2"))
    assert.are.equal(2, code.reload(name))
    assert.is_false(code.soft_purge(name))
    assert.is_true(P.alive(pid))
    assert.is_true(code.purge(name))
    assert.are.equal("killed", down(ref))
  end)
end)

describe("several reloads", function()
  it("kills at the second reload the processes that still sit in v1 code, whichever loop", function()
    local name = modname("twice")
    install_loop(name, "v1")
    local pl, rl = start_loop(name, "local_loop")
    local pq, rq = start_loop(name, "loop")
    assert.are.same({"v1", "v1"}, {ask(pl), ask(pq)})
    install_loop(name, "v2")
    assert.are.equal(2, code.reload(name))
    assert.is_true(code.check_process_code(pl, name))
    assert.is_true(code.check_process_code(pq, name))
    install_loop(name, "v3")
    assert.are.equal(3, code.reload(name))
    assert.are.equal("killed", down(rl))
    assert.are.equal("killed", down(rq))
    -- a process started now runs v3
    local p3 = start_loop(name, "loop")
    assert.are.equal("v3", ask(p3))
  end)

  it("a process that waits in receive in code of its own survives two reloads in a row and then runs v3", function()
    local name = modname("idle")
    install(name, simple("v1"))
    local pid, ref = start_holder(name, function(M) return {M.v(), code.loaded_version(name)} end)
    install(name, simple("v2"))
    assert.are.equal(2, code.reload(name))
    install(name, simple("v3"))
    assert.are.equal(3, code.reload(name))
    -- it never ran module code since v1: nothing of v1 is on its stack (Erlang: alive)
    assert.is_nil(down(ref, 200))
    assert.are.same({"v3", 3}, P.alive(pid) and ask(pid) or "killed")
  end)

  it("reloads several modules: epoch + 2, and a process using both switches both at once", function()
    local a, b = modname("a"), modname("b")
    install(a, simple("a1"))
    install(b, simple("b1"))
    local pid = track(P.spawn(function()
      local A, B = require(a), require(b)
      P.send(me, {"ready", P.self()})
      while true do
        local msg = P.receive(nil, 10000)
        if msg == nil then return end
        P.send(msg[2], {"answer", P.self(), {A.v(), B.v(), code.loaded_version(a), code.loaded_version(b)}})
      end
    end))
    recv({"ready", pid})
    assert.are.same({"a1", "b1", 1, 1}, ask(pid))
    local e0 = code.epoch()
    install(a, simple("a2"))
    install(b, simple("b2"))
    assert.are.equal(2, code.reload(a))
    assert.are.equal(2, code.reload(b))
    assert.are.equal(e0 + 2, code.epoch())
    assert.are.same({"a2", "b2", 2, 2}, ask(pid))
    assert.are.same({name = a, version = 2, file = path_of(a)}, entry_of(a))
    assert.are.same({name = b, version = 2, file = path_of(b)}, entry_of(b))
  end)
end)

-- ===================================================================== scenario 51

describe("reloading a running gen_server (scenario 51)", function()
  it("the next call runs the new handle_call with the same state and pid", function()
    local name = modname("srv")
    install_server(name, "v1")
    local pid, ref = start_server(name, 5)
    assert.are.same({"v1", 5}, gen_server.call(pid, "vsn"))
    install_server(name, "v2")
    assert.are.equal(2, code.reload(name))
    assert.are.same({"v2", 5}, gen_server.call(pid, "vsn"))
    assert.are.equal(pid, gen_server.call(pid, "self"))
    assert.are.same({"v2", 5}, gen_server.call(pid, "vsn"))
    assert.is_nil(down(ref, 50))
  end)

  it("calls code_change(1, state, nil) once before the next message, and runs on with its result", function()
    local name = modname("srv")
    install_server(name, "v1")
    local pid = start_server(name, {n = 5})
    assert.are.same({"v1", {n = 5}}, gen_server.call(pid, "vsn"))
    install_server(name, "v2", "wrap")
    assert.are.equal(2, code.reload(name))
    assert.are.same({"v2", {old_vsn = 1, state = {n = 5}}}, gen_server.call(pid, "vsn"))
    assert.are.same({"v2", {old_vsn = 1, state = {n = 5}}}, gen_server.call(pid, "vsn"))
    assert.are.same({old_vsn = 1, state = {n = 5}}, sys.get_state(pid))
  end)

  it("keeps the old state when code_change raises, and runs on with the new code", function()
    local name = modname("srv")
    install_server(name, "v1")
    local pid, ref = start_server(name, 5)
    assert.are.same({"v1", 5}, gen_server.call(pid, "vsn"))
    install_server(name, "v2", "raise")
    assert.are.equal(2, code.reload(name))
    assert.are.same({"v2", 5}, gen_server.call(pid, "vsn"))
    assert.are.equal(pid, gen_server.call(pid, "self"))
    assert.is_nil(down(ref, 50))
  end)

  it("keeps the old state when code_change returns \"error\", reason", function()
    local name = modname("srv")
    install_server(name, "v1")
    local pid, ref = start_server(name, 5)
    assert.are.same({"v1", 5}, gen_server.call(pid, "vsn"))
    install_server(name, "v2", "error")
    assert.are.equal(2, code.reload(name))
    assert.are.same({"v2", 5}, gen_server.call(pid, "vsn"))
    assert.is_nil(down(ref, 50))
  end)

  it("an idle server survives two reloads in a row and then answers v3 with its state", function()
    local name = modname("srv")
    install_server(name, "v1")
    local pid, ref = start_server(name, 5)
    assert.are.same({"v1", 5}, gen_server.call(pid, "vsn"))
    install_server(name, "v2")
    assert.are.equal(2, code.reload(name))
    install_server(name, "v3")
    assert.are.equal(3, code.reload(name))
    -- the server waits in gen_server's receive, in no code of its module (Erlang: alive)
    assert.is_nil(down(ref, 200))
    local ok, r = pcall(gen_server.call, pid, "vsn", 1000)
    assert.are.same({true, {"v3", 5}}, {ok, r})
  end)
end)

describe("a reload while a callback runs", function()
  it("does not switch in the callback's own receive: it ends in v1, the next call runs v2", function()
    local name = modname("busy_server")
    install_server(name, "v1", "wrap")
    local pid = start_server(name, 7)
    local caller = track(P.spawn(function()
      P.send(me, {"first", gen_server.call(pid, {"wait", me})})
    end))
    recv(function(m) return m == "waiting" end)
    install_server(name, "v2", "wrap")
    assert.are.equal(2, code.reload(name))
    P.sleep(20)   -- the server is woken for the new version, in its callback's receive
    P.send(pid, "go")
    assert.are.same({"first", "v1"}, recv({"first", ANY}))
    assert.are.same({"v2", {old_vsn = 1, state = 7}}, gen_server.call(pid, "vsn"))
    assert.is_false(P.alive(caller) and true or false)
  end)
end)

describe("sys.change_code around a reload", function()
  it("suspend, reload, change_code(pid, mod, 1, extra), resume: the state is migrated once, with extra", function()
    local name = modname("srv")
    install_server(name, "v1")
    local pid = start_server(name, 5)
    assert.are.same({"v1", 5}, gen_server.call(pid, "vsn"))
    assert.are.equal("ok", sys.suspend(pid))
    install_server(name, "v2", "wrap")
    assert.are.equal(2, code.reload(name))
    assert.are.equal("ok", sys.change_code(pid, name, 1, "extra"))
    assert.are.equal("ok", sys.resume(pid))
    assert.are.same({"v2", {old_vsn = 1, extra = "extra", state = 5}}, gen_server.call(pid, "vsn"))
  end)

  it("a failing change_code answers the error and keeps the state", function()
    local name = modname("srv")
    install_server(name, "v1")
    local pid = start_server(name, 5)
    assert.are.equal("ok", sys.suspend(pid))
    install_server(name, "v2", "error")
    assert.are.equal(2, code.reload(name))
    assert.are.same({nil, {"error", "refused"}}, {sys.change_code(pid, name, 1, "extra")})
    assert.are.equal("ok", sys.resume(pid))
    assert.are.same({"v2", 5}, gen_server.call(pid, "vsn"))
  end)
end)

-- ===================================================================== scenario 52

describe("a failed reload changes nothing (scenario 52)", function()
  it("a syntax error: nil and the error with file and line; version, epoch, processes unchanged", function()
    local name = modname("srv")
    install_server(name, "v1")
    local pid, ref = start_server(name, 5)
    local loop_name = modname("loop")
    install_loop(loop_name, "v1")
    local lp, lref = start_loop(loop_name, "local_loop")
    assert.are.same({"v1", 5}, gen_server.call(pid, "vsn"))
    assert.are.equal("v1", ask(lp))
    local e0 = code.epoch()
    install(name, "local M = {}\nfunction M.handle_call(req, from, s)\n  return 'reply', {'v2', s}, s\nreturn M\n")
    install(loop_name, "local M = {}\nM.loop = function() end end\nreturn M\n")
    assert.are.same({nil, path_of(name) .. " (v2):4: 'end' expected (to close 'function' at line 2) near 'return'"},
                    {code.reload(name)})
    assert.are.same({nil, path_of(loop_name) .. " (v2):2: <eof> expected near 'end'"},
                    {code.reload(loop_name)})
    assert.are.equal(1, code.version(name))
    assert.are.equal(1, code.version(loop_name))
    assert.are.equal(e0, code.epoch())
    assert.are.same({"v1", 5}, gen_server.call(pid, "vsn"))
    assert.are.equal("v1", ask(lp))
    assert.is_false(code.check_process_code(lp, loop_name))
    assert.is_true(code.soft_purge(loop_name))
    assert.is_nil(down(ref, 50))
    assert.is_nil(down(lref, 50))
    -- the next good version is version 2
    install_server(name, "v2")
    assert.are.equal(2, code.reload(name))
    assert.are.same({"v2", 5}, gen_server.call(pid, "vsn"))
  end)

  it("a chunk that raises at load: nil and the error as raised; nothing changes", function()
    local name = modname("boom")
    install(name, simple("v1"))
    local pid, ref = start_holder(name, function(M) return M.v() end)
    local e0 = code.epoch()
    install(name, simple("v2", "error('boom')\n"))
    assert.are.same({nil, path_of(name) .. " (v2):1: boom"}, {code.reload(name)})
    install(name, simple("v2", "error(table.concat({...}, ' '), 0)\n"))
    assert.are.same({nil, name .. " " .. path_of(name)}, {code.reload(name)})   -- its `...`
    install(name, "error({'as', 'table'})\n")
    assert.are.same({nil, {"as", "table"}}, {code.reload(name)})
    assert.are.equal(1, code.version(name))
    assert.are.equal(e0, code.epoch())
    assert.are.equal("v1", ask(pid))
    assert.are.equal("v1", in_new_process(name, function(M) return M.v() end))
    assert.is_nil(down(ref, 50))
  end)

  it("a file that cannot be read or a module that cannot be found: nil and a message", function()
    local name = modname("gone")
    install(name, simple("v1"))
    assert.are.equal("v1", in_new_process(name, function(M) return M.v() end))
    local e0 = code.epoch()
    os.remove(path_of(name))
    assert.are.same({nil, "cannot read '" .. path_of(name) .. "'"}, {code.reload(name)})
    assert.are.equal(1, code.version(name))
    assert.are.equal(e0, code.epoch())
    assert.are.equal("v1", in_new_process(name, function(M) return M.v() end))
    local nope = modname("nope")
    assert.are.same({nil, "module '" .. nope .. "' not found"}, {code.reload(nope)})
    assert.is_nil(code.version(nope))
    assert.are.equal(e0, code.epoch())
  end)

  it("a chunk that does not return a module table is refused and changes nothing", function()
    local name = modname("num")
    install(name, simple("v1"))
    local pid = start_holder(name, function(M)
      return {M.v(), code.loaded_version(name), type(package.loaded[name])}
    end)
    assert.are.same({"v1", 1, "table"}, ask(pid))
    local e0 = code.epoch()
    install(name, "return 42\n")
    assert.are.same({nil, "the new version does not return a module table (it returns number)"},
                    {code.reload(name)})
    install(name, "local x = 1\n")
    assert.are.same({nil, "the new version does not return a module table (it returns nil)"},
                    {code.reload(name)})
    assert.are.equal(1, code.version(name))
    assert.are.equal(e0, code.epoch())
    assert.are.same({"v1", 1, "table"}, ask(pid))
  end)
end)

-- ===================================================================== compiled once

describe("require through the code server", function()
  it("compiles a module once: new processes get the published bytecode until code.reload", function()
    local name = modname("once")
    local function source(v)   -- M.args: what the chunk got as `...`
      return "local M = {args = {...}}\nfunction M.v() return '" .. v .. "' end\nreturn M\n"
    end
    install(name, source("v1"))
    assert.is_nil(code.version(name))
    assert.is_nil(code.which(name))
    local function probe(M) return {M.v(), code.loaded_version(name), M.args[1], M.args[2]} end
    assert.are.same({"v1", 1, name, path_of(name)}, in_new_process(name, probe))
    assert.are.equal(1, code.version(name))
    assert.are.equal(path_of(name), code.which(name))
    assert.are.same({name = name, version = 1, file = path_of(name)}, entry_of(name))
    -- a new file on disk is not read by require
    install(name, source("v2"))
    assert.are.same({"v1", 1, name, path_of(name)}, in_new_process(name, probe))
    assert.are.same({"v1", 1, name, path_of(name)}, in_new_process(name, probe))
    assert.are.equal(1, code.version(name))
    -- until it is reloaded
    assert.are.equal(2, code.reload(name))
    assert.are.same({"v2", 2, name, path_of(name)}, in_new_process(name, probe))
    assert.are.same({name = name, version = 2, file = path_of(name)}, entry_of(name))
    assert.are.equal(path_of(name), code.which(name))
  end)

  it("lists embedded modules with their lualib/ and behaviours/ paths", function()
    assert.are.same({name = "gen_server", version = 1, file = "behaviours/gen_server.lua"},
                    entry_of("gen_server"))
    assert.are.same({name = "pretty", version = 1, file = "lualib/pretty.lua"}, entry_of("pretty"))
    assert.are.equal("behaviours/gen_server.lua", code.which("gen_server"))
    assert.are.equal("lualib/pretty.lua", code.which("pretty"))
    assert.are.equal(1, code.version("gen_server"))
    assert.are.equal(1, code.loaded_version("gen_server"))
    assert.is_nil(code.loaded_version(modname("never")))
  end)

  it("code.reload of a module never loaded publishes version 1, which require then uses", function()
    local name = modname("fresh")
    install(name, simple("v1"))
    local e0 = code.epoch()
    assert.are.equal(1, code.reload(name))
    assert.are.equal(e0 + 1, code.epoch())
    assert.are.equal(1, code.version(name))
    assert.are.equal(path_of(name), code.which(name))
    assert.are.same({name = name, version = 1, file = path_of(name)}, entry_of(name))
    install(name, simple("on disk only"))
    assert.are.same({"v1", 1}, in_new_process(name, function(M) return {M.v(), code.loaded_version(name)} end))
    assert.are.equal(2, code.reload(name))
    assert.are.same({"on disk only", 2},
                    in_new_process(name, function(M) return {M.v(), code.loaded_version(name)} end))
  end)
end)

describe("require and package.path", function()
  it("a process whose package.path finds another file of that name loads that file", function()
    local name = modname("twin")
    local a, b = subdir("a"), subdir("b")
    support.write_file(a .. "/" .. name .. ".lua", simple("from a"))
    support.write_file(b .. "/" .. name .. ".lua", simple("from b"))
    local function from(dir)
      local pid = track(P.spawn(function()
        package.path = dir .. "/?.lua"
        local M = require(name)
        P.send(me, {"from", P.self(), M.v(), code.loaded_version(name)})
      end))
      local m = recv({"from", pid, ANY, ANY})
      return {m[3], m[4]}
    end
    assert.are.same({"from a", 1}, from(a))
    assert.are.same({"from b"}, from(b))   -- not the code server's: no version
    assert.are.same({"from a", 1}, from(a))
    assert.are.equal(a .. "/" .. name .. ".lua", code.which(name))
  end)

  it("a long module name survives a collection during require", function()
    local name = modname(string.rep("long_module_name_", 4))
    install(name, simple("long"))
    local pid = track(P.spawn(function()
      collectgarbage("incremental", 0, 1000)   -- a collection at every step
      P.send(me, {"long", P.self(), require(name).v()})
    end))
    assert.are.equal("long", recv({"long", pid, ANY})[3])
  end)
end)

describe("queries", function()
  it("answer for modules the code server does not know", function()
    local name = modname("unknown")
    assert.are.same({nil, nil, nil}, {code.version(name), code.which(name), code.loaded_version(name)})
    assert.is_false(code.purge(name))
    assert.is_true(code.soft_purge(name))
    assert.is_false(code.check_process_code(me, name))
    assert.is_nil(entry_of(name))
  end)

  it("raise argument errors for a bad pid or name", function()
    local ok, err = pcall(code.check_process_code, "x", "m")
    assert.is_false(ok)
    assert.is_truthy(err:find("bad argument #1 to 'code.check_process_code' (pid expected, got string)", 1, true), err)
    ok, err = pcall(code.reload)
    assert.is_false(ok)
    assert.is_truthy(err:find("bad argument #1 to 'code.reload' (string expected, got no value)", 1, true), err)
  end)
end)

-- ===================================================================== in place

describe("module tables updated in place", function()
  it("a process holding M sees the new functions through M; removed fields disappear; require gives the same table", function()
    local name = modname("shape")
    install(name, "local M = {}\nfunction M.a() return 'a1' end\nfunction M.gone() end\nM.data = {1}\nreturn M\n")
    local pid = start_holder(name, function(M)
      return {M.a(), M.gone ~= nil, M.new and M.new(), M.data, require(name) == M, code.loaded_version(name)}
    end)
    assert.are.same({"a1", true, nil, {1}, true, 1}, ask(pid))
    install(name, "local M = {}\nfunction M.a() return 'a2' end\nfunction M.new() return 'new' end\nM.data = {2}\nreturn M\n")
    assert.are.equal(2, code.reload(name))
    assert.are.same({"a2", false, "new", {2}, true, 2}, ask(pid))
  end)

  it("functions held in locals keep the old code and do not make the process an old-code user", function()
    local name = modname("held")
    install(name, simple("v1"))
    local pid, ref = start_holder(name, function(M)
      OLD = OLD or M.v
      return {M.v(), OLD()}
    end)
    assert.are.same({"v1", "v1"}, ask(pid))
    install(name, simple("v2"))
    assert.are.equal(2, code.reload(name))
    assert.are.same({"v2", "v1"}, ask(pid))
    assert.is_false(code.check_process_code(pid, name))
    install(name, simple("v3"))
    assert.are.equal(3, code.reload(name))
    assert.are.same({"v3", "v1"}, ask(pid))
    assert.is_nil(down(ref, 50))
  end)

  it("module-level locals start afresh in the new version", function()
    local name = modname("count")
    local src = "local n = 0\nlocal M = {}\nfunction M.inc() n = n + 1 return n end\nreturn M\n"
    install(name, src)
    local pid = start_holder(name, function(M) return M.inc() end)
    assert.are.same({1, 2, 3}, {ask(pid), ask(pid), ask(pid)})
    assert.are.equal(2, code.reload(name))
    assert.are.same({1, 2}, {ask(pid), ask(pid)})
  end)

  it("a process that does not wait keeps the old functions until it enters receive", function()
    local name = modname("busy")
    install(name, simple("v1"))
    local pid = track(P.spawn(function()
      local M = require(name)
      local e0 = code.epoch()
      P.send(me, {"ready", P.self()})
      local deadline = P.monotonic() + 3000
      while code.epoch() == e0 and P.monotonic() < deadline do end   -- busy: preempted, never waiting
      P.send(me, {"before", M.v(), code.loaded_version(name)})
      P.receive({"nothing", "comes"}, 0)
      P.send(me, {"after", M.v(), code.loaded_version(name)})
    end))
    recv({"ready", pid})
    install(name, simple("v2"))
    assert.are.equal(2, code.reload(name))
    assert.are.same({"before", "v1", 1}, recv({"before", ANY, ANY}, 4000))
    assert.are.same({"after", "v2", 2}, recv({"after", ANY, ANY}))
  end)

  it("a loop that only sleeps switches in its sleep: M.tick() reaches the new code", function()
    local name = modname("ticker")
    install(name, simple("v1"))
    local pid = track(P.spawn(function()
      local M = require(name)
      while true do
        P.send(me, {"tick", M.v(), code.loaded_version(name)})
        P.sleep(20)
      end
    end))
    assert.are.same({"tick", "v1", 1}, recv({"tick", ANY, ANY}))
    install(name, simple("v2"))
    assert.are.equal(2, code.reload(name))
    local deadline = P.monotonic() + 2000
    local m
    repeat m = recv({"tick", ANY, ANY}) until m[2] == "v2" or P.monotonic() > deadline
    assert.are.same({"tick", "v2", 2}, m)
    assert.is_false(code.check_process_code(pid, name))
    -- a third version does not kill it: it left v1 at its first sleep after the reload
    install(name, simple("v3"))
    assert.are.equal(3, code.reload(name))
    repeat m = recv({"tick", ANY, ANY}) until m[2] == "v3" or P.monotonic() > deadline
    assert.are.same({"tick", "v3", 3}, m)
    assert.is_true(P.alive(pid))
  end)

  it("the new version's functions write to the table everyone reads (M.x = v, M.__index = M)", function()
    local name = modname("setter")
    local src = "local M = {}\nM.__index = M\nfunction M.set(x) M.value = x end\n"
      .. "function M.get() return M.value end\nfunction M.tag() return '%s' end\nreturn M\n"
    install(name, src:format("v1"))
    local pid = start_holder(name, function(M)
      M.set(5)
      return {M.tag(), M.value, M.get(), M.__index == M}
    end)
    assert.are.same({"v1", 5, 5, true}, ask(pid))
    install(name, src:format("v2"))
    assert.are.equal(2, code.reload(name))
    assert.are.same({"v2", 5, 5, true}, ask(pid))
  end)
end)

-- ===================================================================== switch failures

describe("a new version that fails when a process switches to it", function()
  local result
  local function run()
    if not result then
      local dir = subdir("sf")
      result = run_child(dir, "switch_fail.lua", dir)
      result.dir = dir
    end
    return result
  end

  --- The pid the child script printed for tag.
  local function pid_of(r, tag)
    return assert(r.out:match(tag .. " pid (<[%d.]+>)\n"), "no pid for " .. tag)
  end

  it("keeps the old version in that process, which stays a user of it and dies at the next version", function()
    local r = run()
    assert.are.equal(0, r.status)
    local out = r.out:gsub("%w+ pid <[%d.]+>\n", "")
    assert.are.equal(table.concat({
      "reload sf_req 2",
      "req answers v1 1",          -- the module needed only exists in the reloading process
      "req answers v1 1",          -- no new attempt at the next receive
      "req check_process_code true",
      "reload sf_strict 2",
      "strict answers v1 1",       -- raises where STRICT is set
      "lax answers v2 2",          -- the others switch
      "strict answers v1 1",
      "strict check_process_code true",
      "lax check_process_code false",
      "reload sf_long 2",
      "long1 answers v1 1",
      "long2 answers v1 1",
      "reload sf_req 3",
      "reload sf_strict 3",
      "req down killed",
      "strict down killed",
      "lax answers v3 3",
      "more DOWN false",
    }, "\n") .. "\n", out)
  end)

  it("prints \"moonbeam: process <pid> keeps version 1 of module 'name': error\" on stderr", function()
    local r = run()
    local strict, req = pid_of(r, "strict"), pid_of(r, "req")
    assert.is_truthy(r.err:find("moonbeam: process " .. strict
      .. " keeps version 1 of module 'sf_strict': strict mode\n", 1, true))
    local head = "moonbeam: process " .. req .. " keeps version 1 of module 'sf_req': "
      .. r.dir .. "/sf_req.lua (v2):1: module 'sf_only_here' not found:\n"
    assert.are.equal(head, r.err:sub(1, #head))
  end)

  it("writes each warning as whole lines, even for a long error", function()
    local r = run()
    local long1, long2 = pid_of(r, "long1"), pid_of(r, "long2")
    assert.are.equal("\n", r.err:sub(-1))
    local starts = 0
    for pos in r.err:gmatch("()moonbeam: process ") do
      assert.is_true(pos == 1 or r.err:sub(pos - 1, pos - 1) == "\n",
                     "a warning starts inside a line: " .. r.err:sub(math.max(1, pos - 40), pos + 40))
      starts = starts + 1
    end
    assert.are.equal(4, starts)
    for _, pid in ipairs({long1, long2}) do
      local line = r.err:match("\n(moonbeam: process " .. pid:gsub("%p", "%%%0") .. " [^\n]*)\n")
      assert.is_truthy(line, "no warning line for " .. pid)
      assert.is_truthy(line:match("^moonbeam: process <[%d.]+> keeps version 1 of module 'sf_long': x+$"), line)
    end
  end)
end)

-- ===================================================================== embedded modules

describe("reload of an embedded module", function()
  local function lines(t) return table.concat(t, "\n") .. "\n" end

  it("from the repo root: code.reload(\"pretty\") → 2, and processes get the new code", function()
    local r = run_child(support.physical_dir(support.dir .. "/.."), "embedded.lua")
    assert.are.same({0, ""}, {r.status, r.err})
    assert.are.equal(lines({
      "version before nil",
      "version 1 which lualib/pretty.lua",
      'old 1 @lualib/pretty.lua {1, "a"} true',
      "reload 2 nil",
      "version 2",
      'old 2 @lualib/pretty.lua (v2) {1, "a"} true',
      'new 2 @lualib/pretty.lua (v2) {1, "a"} true',
    }), r.out)
  end)

  it("reads lualib/pretty.lua relative to the current directory", function()
    local dir = subdir("fake")
    assert(os.execute("mkdir -p " .. shell_quote(dir .. "/lualib")))
    support.write_file(dir .. "/lualib/pretty.lua",
                       "local M = {}\nfunction M.format(v) return 'fake ' .. type(v) end\nreturn M\n")
    local r = run_child(dir, "embedded.lua")
    assert.are.same({0, ""}, {r.status, r.err})
    assert.are.equal(lines({
      "version before nil",
      "version 1 which lualib/pretty.lua",
      'old 1 @lualib/pretty.lua {1, "a"} true',
      "reload 2 nil",
      "version 2",
      "old 2 @lualib/pretty.lua (v2) fake table true",
      "new 2 @lualib/pretty.lua (v2) fake table true",
    }), r.out)
  end)

  it("without the source file: nil, \"cannot read 'lualib/pretty.lua'\", and version 1 stays", function()
    local r = run_child(subdir("empty"), "embedded.lua")
    assert.are.same({0, ""}, {r.status, r.err})
    assert.are.equal(lines({
      "version before nil",
      "version 1 which lualib/pretty.lua",
      'old 1 @lualib/pretty.lua {1, "a"} true',
      "reload nil cannot read 'lualib/pretty.lua'",
      "version 1",
      'old 1 @lualib/pretty.lua {1, "a"} true',
      'new 1 @lualib/pretty.lua {1, "a"} true',
    }), r.out)
  end)
end)
