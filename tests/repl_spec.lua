-- repl_spec.lua — the interactive shell (repl/): on a terminal through tmux (readline
-- editing, completion, multi-line input, Ctrl-C, Ctrl-D, history, hot reload from the
-- shell, the keeper, the helpers), and scripted through a pipe (`moonbeam -i`).
--
-- Each terminal test starts `moonbeam` in a tmux server of its own (`tmux -S <socket>`, the
-- socket in a fresh temporary directory, which is also $HOME and goes away after the test), waits for what it expects by polling the
-- pane (10 s at most), and kills the tmux server at the end. Each line is typed only once
-- the shell shows its prompt, so readline (not the terminal's echo) gets it.

local support = dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "support.lua")
local shell_quote, read_file, write_file = support.shell_quote, support.read_file, support.write_file
local MOONBEAM = support.moonbeam
local FIX = support.dir .. "/fixtures/repl"
local WAIT = 10000

local function run(cmd)
  local p = assert(io.popen(cmd .. " 2>&1"))
  local out = p:read("a")
  local _, _, status = p:close()
  return out, status
end

local function tmpdir()
  local dir = run("mktemp -d /tmp/mbrepl.XXXXXX"):match("^(%S+)")
  return support.physical_dir(assert(dir, "mktemp failed"))
end

local function has(s, sub)
  return s:find(sub, 1, true) ~= nil
end

--- Lines of s without trailing blanks, empty trailing lines dropped.
local function rstrip(s)
  return (s:gsub("[ \t]+\n", "\n"):gsub("%s+$", ""))
end

-- ===================================================================== a terminal

local Term = {}
Term.__index = Term
local sessions = 0

--- Starts `moonbeam args` on a 100x40 pty in a new temp dir (also $HOME). opts.dir: use
-- this directory instead; opts.files: {name = contents} written there first.
local function term(args, opts)
  opts = opts or {}
  local dir = opts.dir or tmpdir()
  for name, text in pairs(opts.files or {}) do write_file(dir .. "/" .. name, text) end
  -- a socket per session: `kill-server` returns before that server has gone, and a new
  -- session on the same socket could reach the dying one
  sessions = sessions + 1
  local self = setmetatable({dir = dir, sock = string.format("%s/tmux%d.sock", dir, sessions)},
                            Term)
  local cmd = string.format("cd %s && env HOME=%s INPUTRC=/dev/null COLUMNS=100 %s %s; "
                              .. "echo \"[exit $?]\"; sleep 600",
                            shell_quote(dir), shell_quote(dir), shell_quote(MOONBEAM),
                            args or "")
  local out, status = self:tmux("-f /dev/null new-session -d -s t -x 100 -y 40 " .. shell_quote(cmd))
  self.mark = 1
  local ok, err = pcall(function()
    assert(status == 0, "tmux: " .. out)
    self:prompt()
  end)
  if not ok then
    self:close()
    error(err, 0)
  end
  return self
end

function Term:tmux(args)
  return run("tmux -S " .. shell_quote(self.sock) .. " " .. args)
end

--- Everything the pane shows, scrollback included, trailing blanks removed.
function Term:screen()
  return rstrip((self:tmux("capture-pane -p -J -S - -E - -t t")))
end

--- Waits until `text` shows up after the mark (the last line when the mark was set).
function Term:wait(text, ms)
  local deadline = process.monotonic() + (ms or WAIT)
  while true do
    local s = self:screen()
    if s:find(text, self.mark, true) then return s end
    if process.monotonic() > deadline then
      error(string.format("no %q on the terminal within %d ms; it shows:\n%s", text, ms or WAIT,
                          s:sub(self.mark)), 2)
    end
    process.sleep(40)
  end
end

--- Waits until the last line is exactly the prompt p ("> " by default): the reader is ready.
function Term:prompt(p)
  p = p or ">"
  local deadline = process.monotonic() + WAIT
  while true do
    local s = self:screen()
    if s:sub(-#p - 1) == "\n" .. p then return s end
    if process.monotonic() > deadline then
      error(string.format("no prompt %q within %d ms; the terminal shows:\n%s", p, WAIT, s), 2)
    end
    process.sleep(40)
  end
end

--- Move the mark to the start of the last line shown.
function Term:set_mark()
  local s = self:screen()
  local last = 0
  for i in s:gmatch("()\n") do last = i end
  self.mark = last + 1
end

--- Types text (literally) without Enter.
function Term:type(text)
  assert(text:sub(-1) ~= ";", "tmux would take a final ';' for a command separator")
  local out, status = self:tmux("send-keys -t t -l " .. shell_quote(text))
  assert(status == 0, out)
end

function Term:keys(...)
  local out, status = self:tmux("send-keys -t t " .. table.concat({...}, " "))
  assert(status == 0, out)
end

--- At the prompt p, types a line and Enter, and waits for `expect` (if given) after it.
function Term:line(text, expect, p)
  self:prompt(p)
  self:set_mark()
  self:type(text)
  self:keys("Enter")
  if expect then return self:wait(expect) end
end

function Term:close()
  self:tmux("kill-server")
  run("rm -rf " .. shell_quote(self.dir))
end

-- ===================================================================== a pipe

--- Runs `moonbeam args` in dir with `input` on stdin (a pipe). {status=, out=, err=}.
local function piped(args, input, dir)
  local in_path, out_path, err_path = os.tmpname(), os.tmpname(), os.tmpname()
  write_file(in_path, input)
  local _, _, status = os.execute(string.format("cd %s && env -u LUA_INIT -u LUA_INIT_5_4 timeout 20 %s %s <%s >%s 2>%s",
    shell_quote(dir or FIX), shell_quote(MOONBEAM), args, in_path, out_path, err_path))
  local r = {status = status, out = read_file(out_path), err = read_file(err_path)}
  os.remove(in_path)
  os.remove(out_path)
  os.remove(err_path)
  return r
end

--- The shell's output lines after the banner, with the prompts taken off the front.
local function shell_lines(out)
  local t = {}
  local first = true
  for l in out:gmatch("([^\n]*)\n") do
    if not first then
      local v = l:gsub("^[> ]*", "")
      if v ~= "" then t[#t + 1] = v end
    end
    first = false
  end
  return t
end

local V1, V2 = read_file(FIX .. "/counter_v1.lua"), read_file(FIX .. "/counter_v2.lua")

-- ===================================================================== on a terminal

describe("the shell on a terminal", function()
  local t
  after_each(function()
    if t then t:close() end
    t = nil
  end)

  it("reloads a gen_server's module with r(): the new reply, the same pid and state", function()
    t = term("", {files = {["counter.lua"] = V1}})
    t:line('gen_server = require "gen_server"')
    t:line('srv = gen_server.start_link("counter", 0, {name = "ctr"})')
    local s = t:line('print("before=" .. tostring(gen_server.whereis("ctr")))', "before=<")
    local before = s:match("before=(<0%.%d+%.0>)", t.mark)
    assert.is_truthy(before, s)
    t:line('gen_server.call("ctr", "bump")', '{"v1", 1}')
    write_file(t.dir .. "/counter.lua", V2)
    t:line('r("counter")', "reloaded counter (version 2): 1 process switched")
    t:line('gen_server.call("ctr", "bump")', '{"v2", 2}')
    s = t:line('print("after=" .. tostring(gen_server.whereis("ctr")))', "after=<")
    assert.are.equal(before, s:match("after=(<0%.%d+%.0>)", t.mark))
    s = t:line('state("ctr") * 1000', "2000")
    t:line('print("alive=" .. tostring(process.alive(srv)))', "alive=true")
  end)

  it("completes a table field, a global and a module name with Tab", function()
    t = term("", {files = {["counter.lua"] = V1}})
    t:prompt()
    t:type("string.fo")
    t:keys("Tab")
    t:wait("> string.format")
    t:type('("<%d>", 7)')
    t:keys("Enter")
    t:wait('"<7>"')
    t:line("my_unusual_global_name = 42")
    t:prompt()
    t:set_mark()
    t:type("my_unusual_gl")
    t:keys("Tab")
    t:wait("> my_unusual_global_name")
    t:type(" + 1")
    t:keys("Enter")
    t:wait("43")
    -- a module another process loaded: the code server knows it
    t:line('process.spawn("counter.init", 0) and nil', "nil")
    t:line('while not require("code").version("counter") do process.sleep(5) end')
    t:prompt()
    t:set_mark()
    t:type('require("code").which("cou')
    t:keys("Tab")
    t:wait('> require("code").which("counter')
    t:type('")')
    t:keys("Enter")
    t:wait('"./counter.lua"')
  end)

  it("asks for more with >> while the input is incomplete, then runs it", function()
    t = term()
    t:line("function add3(a,")
    t:line("  b, c)", nil, ">>")
    t:line("return a + b + c", nil, ">>")
    t:line("end", nil, ">>")
    t:line("add3(100, 20, 3)", "123")
    t:line('print("x" ..', nil)
    t:line('"y")', "xy", ">>")
  end)

  it("keeps running other processes while the prompt waits for input", function()
    t = term()
    t:line('process.spawn(function() process.sleep(300) print("from the background: " .. 6 * 7) end) and nil', "nil")
    t:prompt()
    t:wait("from the background: 42")
  end)

  it("prints an error with its traceback and carries on", function()
    t = term()
    t:line('error("oops")', "stdin:1: oops")
    local s = t:wait("stack traceback:")
    assert.is_truthy(s:find("[C]: in function 'error'", t.mark, true), s)
    t:line("6 * 7", "42")
  end)

  it("Ctrl-C interrupts a running evaluation; the shell and a service carry on", function()
    t = term("", {files = {["counter.lua"] = V1}})
    t:line('gen_server = require "gen_server"')
    t:line('srv = gen_server.start_link("counter", 0, {name = "ctr"})')
    t:line("while true do end")
    process.sleep(200)   -- it runs; the interrupt must work at any time anyway
    t:keys("C-c")
    t:wait("interrupted!")
    t:line('gen_server.call("ctr", "bump")', '{"v1", 1}')
    t:line("1 + 1", "2")
  end)

  it("Ctrl-C at the prompt drops the line being typed and shows a fresh prompt", function()
    t = term()
    t:prompt()
    t:set_mark()
    t:type("this is not lua")
    t:wait("> this is not lua")   -- on the line before the interrupt (the machine may be slow)
    t:keys("C-c")
    t:wait("> this is not lua^C")
    t:line("10 + 1", "11")
    t:line("function f()")
    t:prompt(">>")
    t:type("x = ")
    t:wait(">> x =")
    t:keys("C-c")   -- drops the unfinished function too
    t:line('print(type(f) .. "!")', "nil!")
  end)

  it("Ctrl-D on an empty line quits with status 0 and saves the history", function()
    t = term()
    t:line("first_line = 1")
    t:line("second_line = 2")
    t:prompt()
    t:keys("C-d")
    t:wait("[exit 0]")
    assert.are.equal("first_line = 1\nsecond_line = 2\n", read_file(t.dir .. "/.moonbeam_history"))
    -- a new session reads it back: Up shows the last line
    t:tmux("kill-server")
    t = term("", {dir = t.dir})
    t:prompt()
    t:set_mark()
    t:keys("Up")
    t:wait("> second_line = 2")
    t:keys("Enter")
    t:line("print(second_line * 5)", "10")
  end)

  it("when the shell process dies, the keeper starts a new shell with fresh globals", function()
    t = term()
    t:line("old_global = 1")
    local s = t:line('print("me=" .. tostring(process.self()))', "me=<")
    local old = s:match("me=(<0%.%d+%.0>)", t.mark)
    t:line("kill(process.self())", "*** shell process " .. old .. " exited: killed; starting a new shell")
    s = t:line('print("me=" .. tostring(process.self()), "g=" .. tostring(old_global))', "g=nil")
    local new = s:match("me=(<0%.%d+%.0>)", t.mark)
    assert.is_truthy(new and new ~= old, s)
    t:line("kill(process.self())", "*** shell process " .. new .. " exited: killed; starting a new shell")
    t:line("string.rep('ab', 3)", '"ababab"')
    t:prompt()
    t:keys("C-d")
    t:wait("[exit 0]")
  end)

  it("has the helpers ps(), i(), pid(), flush(), kill() and state()", function()
    t = term("", {files = {["counter.lua"] = V1}})
    t:line('gen_server = require "gen_server"')
    local s = t:line('srv = gen_server.start_link("counter", 7, {name = "ctr"}) print("srv=" .. tostring(srv))', "srv=<")
    local srv = s:match("srv=(<0%.%d+%.0>)", t.mark)
    s = t:line("ps()", "Current function")
    assert.is_truthy(s:find("Pid%s+Name or initial call%s+Status%s+Reds%s+MsgQ%s+Memory%s+Current function", t.mark), s)
    assert.is_truthy(s:find("\n" .. srv:gsub("%p", "%%%0") .. "%s+ctr%s+waiting%s+%d+%s+0%s+%d+%s+%S+", t.mark), s)
    s = t:line(string.format('i(pid("%s"))', srv), "trap_exit")
    assert.is_truthy(s:find('name = "ctr"', t.mark, true), s)
    assert.is_truthy(s:find("status = \"waiting\"", t.mark, true), s)
    t:line("state(srv) + 0.5", "7.5")
    t:line('process.send(process.self(), {"hello", 42}) and nil', "nil")
    t:line("flush()", 'Shell got {"hello", 42}')
    t:wait('"ok"')
    t:line("kill(srv)", "true")
    t:line("process.sleep(300)")   -- the EXIT arrives meanwhile
    t:line("flush()", 'Shell got {"EXIT", ' .. srv .. ', "killed"}')
    t:line('print("alive=" .. tostring(process.alive(srv)))', "alive=false")
    t:line("h()", "Moonbeam shell helpers")
  end)
end)

-- ===================================================================== through a pipe

describe("the shell with stdin not a terminal", function()
  it("reads line by line: values, statements, multi-line input, errors; status 0 at the end", function()
    local r = piped("-i", table.concat({
      "x = 6",
      "x * 7",
      "function twice(v)",
      "  return v, v",
      "end",
      "twice('a')",
      "error('bad')",
      "t = {1, {k = 'v'}} t.me = t",
      "t",
      "process.self()",
      "r('no_such_module')",
      "", }, "\n"))
    assert.are.equal(0, r.status)
    assert.are.same({ "42", '"a"\t"a"', '{1, {k = "v"}, me = <cycle>}', "<0.1.0>",
                      'nil\t"module \'no_such_module\' not found"' }, shell_lines(r.out))
    assert.are.equal("stdin:1: bad\nstack traceback:\n\t[C]: in function 'error'\n"
                     .. "\tstdin:1: in main chunk\n\t[C]: in ?\n", r.err)
  end)

  it("flush() prints the shell's messages, EXITs of linked processes included", function()
    local r = piped("-i", table.concat({
      "process.send(process.self(), 'one') and nil",
      "p = process.spawn_link(function() error({'boom'}) end)",
      "process.sleep(300)",
      "flush()",
      "flush()",
      "print(p == process.topid(tostring(p)), pid(tostring(p)) == p)",
      "", }, "\n"))
    assert.are.equal(0, r.status)
    local l = shell_lines(r.out)
    assert.are.equal("nil", l[1])
    assert.are.equal('Shell got "one"', l[2])
    assert.is_truthy(l[3]:find('^Shell got {"EXIT", <0%.%d+%.0>, {"boom"}}$'), l[3])
    assert.are.same({ '"ok"', '"ok"', "true\ttrue" }, { l[4], l[5], l[6] })
  end)

  it("r() reloads a module from its file and says how many processes switched", function()
    local dir = tmpdir()
    write_file(dir .. "/counter.lua", V1)
    write_file(dir .. "/counter_v2.lua", V2)
    local r = piped("-i", table.concat({
      "gen_server = require 'gen_server'",
      "srv = gen_server.start_link('counter', 10)",
      "gen_server.call(srv, 'bump')",
      "os.rename('counter_v2.lua', 'counter.lua')",
      "r('counter')",
      "gen_server.call(srv, 'bump')",
      "state(srv)",
      "", }, "\n"), dir)
    run("rm -rf " .. shell_quote(dir))
    assert.are.equal(0, r.status, r.err)
    assert.are.same({ '{"v1", 11}', "true",
                      "reloaded counter (version 2): 1 process switched",
                      '{"v2", 12}', "12" }, shell_lines(r.out))
  end)

  it("-i script.lua runs the script first; the shell sees its globals", function()
    local r = piped("-i globals.lua", "print(greeting, select('#', ...))\nfrom_script()\n")
    assert.are.equal(0, r.status, r.err)
    assert.are.same({ "hello\t0", '"called"' }, shell_lines(r.out))
  end)

  it("-i with a failing script prints the error as lua does and exits 1 without a shell", function()
    local r = piped("-i failing.lua", "print('not reached')\n")
    assert.are.equal(1, r.status)
    assert.is_falsy(has(r.out, "not reached"))
    assert.are.equal(MOONBEAM .. ": failing.lua:2: script failed\nstack traceback:\n"
                     .. "\t[C]: in function 'error'\n\tfailing.lua:2: in main chunk\n\t[C]: in ?\n", r.err)
  end)

  it("a shell that dies is replaced by a new one that reads the next line", function()
    local r = piped("-i", "x = 1\nkill(process.self())\nprint('new shell', x, process.self())\n")
    assert.are.equal(0, r.status)
    local l = shell_lines(r.out)
    assert.are.equal("*** shell process <0.1.0> exited: killed; starting a new shell", l[1])
    assert.is_truthy(l[2]:find("^new shell\tnil\t<0%.%d+%.0>$"), l[2])
    assert.are_not.equal("<0.1.0>", l[2]:match("(<.*>)"))
  end)
end)
