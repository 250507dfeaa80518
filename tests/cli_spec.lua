-- cli_spec.lua — the `moonbeam` command, driven as a subprocess and compared with lua5.4.
--
-- Every command runs under `timeout 20` from tests/fixtures/cli, with LUA_INIT and
-- LUA_INIT_5_4 removed from the environment unless a test sets them; stdout and stderr
-- are captured separately. Where moonbeam must behave as lua does, the test runs lua5.4
-- with the same command line and compares, with the interpreter's name replaced.

local support = dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "support.lua")
local shell_quote = support.shell_quote
local SPEC_DIR = support.dir
local MOONBEAM = support.moonbeam
local FIX = SPEC_DIR .. "/fixtures/cli"
local MODS = FIX .. "/mods/?.lua;;"

local read_file, write_file = support.read_file, support.write_file

--- Runs argv (a list; argv[1] is the program) in FIX. opts: env (name -> value),
-- stdin (a string, piped in), stdin_file (a path, redirected), time_limit (seconds).
-- Returns {status=, out=, err=, ms=}.
local function run(argv, opts)
  opts = opts or {}
  local words = {}
  for i, a in ipairs(argv) do words[i] = shell_quote(a) end
  local env = { "env", "-u", "LUA_INIT", "-u", "LUA_INIT_5_4" }
  for k, v in pairs(opts.env or {}) do env[#env + 1] = shell_quote(k .. "=" .. v) end
  local out_path, err_path, in_path = os.tmpname(), os.tmpname(), nil
  local cmd = table.concat(env, " ") .. " timeout " .. (opts.time_limit or 20) .. " "
    .. table.concat(words, " ") .. " >" .. out_path .. " 2>" .. err_path
  if opts.stdin then
    in_path = os.tmpname()
    write_file(in_path, opts.stdin)
    cmd = "cat " .. in_path .. " | " .. cmd
  elseif opts.stdin_file then
    cmd = cmd .. " <" .. shell_quote(opts.stdin_file)
  else
    cmd = cmd .. " </dev/null"
  end
  local t0 = process.monotonic()
  local _, _, status = os.execute("cd " .. shell_quote(FIX) .. " && " .. cmd)
  local r = { status = status, ms = process.monotonic() - t0,
              out = read_file(out_path), err = read_file(err_path) }
  os.remove(out_path)
  os.remove(err_path)
  if in_path then os.remove(in_path) end
  return r
end

local function mb(args, opts)
  return run({ MOONBEAM, table.unpack(args) }, opts)
end

local function lua(args, opts)
  return run({ "lua5.4", table.unpack(args) }, opts)
end

--- s with every occurrence of `from` replaced by `to`, both taken literally.
local function replace(s, from, to)
  local parts, pos = {}, 1
  while true do
    local i, j = s:find(from, pos, true)
    if not i then break end
    parts[#parts + 1] = s:sub(pos, i - 1) .. to
    pos = j + 1
  end
  parts[#parts + 1] = s:sub(pos)
  return table.concat(parts)
end

--- lua5.4's output as moonbeam must print it: the interpreter's name replaced.
local function as_moonbeam(s)
  return replace(s, "lua5.4", MOONBEAM)
end

local function lines(s)
  local t = {}
  for l in s:gmatch("([^\n]*)\n") do t[#t + 1] = l end
  return t
end

local function first_line(s)
  return s:match("^([^\n]*)")
end

local function has(s, sub)
  return s:find(sub, 1, true) ~= nil
end

describe("moonbeam command options", function()
  it("runs several -e chunks in command-line order", function()
    local r = mb({ "-e", "x = 1", "-e", "x = x * 10; io.write('a')", "-e", "print(x)" })
    assert.are.same({ status = 0, out = "a10\n", err = "" }, { status = r.status, out = r.out, err = r.err })
  end)

  it("reports an error raised by -e as lua does, with status 1", function()
    local r = mb({ "-e", "error('e1')" })
    local l = lua({ "-e", "error('e1')" })
    assert.are.equal(1, r.status)
    assert.are.equal(MOONBEAM .. ": (command line):1: e1", first_line(r.err))
    assert.are.equal(as_moonbeam(first_line(l.err)), first_line(r.err))
    assert.are.equal("", r.out)
  end)

  it("reports a syntax error in -e exactly as lua does", function()
    local r = mb({ "-e", "x = =" })
    local l = lua({ "-e", "x = =" })
    assert.are.equal(1, r.status)
    assert.are.equal(as_moonbeam(l.err), r.err)
    assert.are.equal(MOONBEAM .. ": (command line):1: unexpected symbol near '='\n", r.err)
  end)

  it("-l mod requires a module from LUA_PATH into the global of its name, in order with -e", function()
    local args = { "-e", "before = tostring(rawget(_G, 'climod'))", "-l", "climod",
                   "-e", "print(before, climod.name, climod.loads)" }
    local r = mb(args, { env = { LUA_PATH = MODS } })
    assert.are.same({ 0, "nil\tclimod\t1\n", "" }, { r.status, r.out, r.err })
    assert.are.equal(lua(args, { env = { LUA_PATH = MODS } }).out, r.out)
  end)

  it("-l g=mod requires a module into the global g only", function()
    local args = { "-l", "g=climod", "-e", "print(g.name, rawget(_G, 'climod'))" }
    local r = mb(args, { env = { LUA_PATH = MODS } })
    assert.are.same({ 0, "climod\tnil\n", "" }, { r.status, r.out, r.err })
    assert.are.equal(lua(args, { env = { LUA_PATH = MODS } }).out, r.out)
  end)

  it("-l of a missing module fails with lua's message and status 1", function()
    local r = mb({ "-l", "no_such_mod" })
    local l = lua({ "-l", "no_such_mod" })
    assert.are.equal(1, r.status)
    assert.are.equal(MOONBEAM .. ": module 'no_such_mod' not found:", first_line(r.err))
    assert.are.equal(as_moonbeam(first_line(l.err)), first_line(r.err))
  end)

  it("-v prints one line naming Moonbeam and Lua 5.4 and does not read stdin", function()
    local r = mb({ "-v" }, { stdin = "print('from stdin')\n" })
    assert.are.equal(0, r.status)
    assert.are.equal("", r.err)
    local l = lines(r.out)
    assert.are.equal(1, #l)
    assert.is_truthy(has(l[1], "Moonbeam"))
    assert.is_truthy(has(l[1], "Lua 5.4"))
  end)

  it("-v with -e prints the version line first, then runs the chunk", function()
    local r = mb({ "-v", "-e", "print('after')" })
    local l = lines(r.out)
    assert.are.equal(0, r.status)
    assert.are.equal(2, #l)
    assert.is_truthy(has(l[1], "Moonbeam"))
    assert.are.equal("after", l[2])
  end)

  it("honours LUA_PATH and LUA_CPATH as lua does", function()
    local args = { "-e", "print(package.path) print(package.cpath)" }
    local env = { LUA_PATH = "./?.x;;", LUA_CPATH = "./?.y;;" }
    local r = mb(args, { env = env })
    assert.are.equal(0, r.status)
    assert.is_truthy(r.out:find("^%./%?%.x;"))
    assert.are.equal(lua(args, { env = env }).out, r.out)
  end)

  it("-E ignores LUA_PATH and LUA_CPATH: the default paths, as lua -E gives them", function()
    local args = { "-E", "-e", "print(package.path) print(package.cpath)" }
    local env = { LUA_PATH = "./?.x;;", LUA_CPATH = "./?.y;;" }
    local r = mb(args, { env = env })
    assert.are.equal(0, r.status)
    assert.is_falsy(has(r.out, "?.x") or has(r.out, "?.y"))
    assert.are.equal(lua(args, { env = env }).out, r.out)
  end)

  it("-E makes a module reachable only through LUA_PATH not found", function()
    local r = mb({ "-E", "-l", "climod", "-e", "print('ran')" }, { env = { LUA_PATH = MODS } })
    assert.are.equal(1, r.status)
    assert.are.equal("", r.out)
    assert.is_truthy(has(r.err, "module 'climod' not found"))
  end)

  it("-E ignores LUA_INIT and LUA_INIT_5_4", function()
    local r = mb({ "-E", "-e", "print('main')" },
                 { env = { LUA_INIT = "print('init')", LUA_INIT_5_4 = "print('init54')" } })
    assert.are.same({ 0, "main\n", "" }, { r.status, r.out, r.err })
  end)

  it("-W turns warnings on: warn('x') prints 'Lua warning: x' on stderr", function()
    local r = mb({ "-W", "-e", "warn('x')" })
    assert.are.same({ 0, "", "Lua warning: x\n" }, { r.status, r.out, r.err })
    assert.are.equal(lua({ "-W", "-e", "warn('x')" }).err, r.err)
  end)

  it("without -W warn prints nothing", function()
    local r = mb({ "-e", "warn('x')" })
    assert.are.same({ 0, "", "" }, { r.status, r.out, r.err })
  end)

  it("-W turns warnings on in spawned processes too", function()
    local r = mb({ "-W", "-e", [[
      local me = process.self()
      process.spawn(function() warn("from child") process.send(me, "done") end)
      assert(process.receive(nil, 5000))]] })
    assert.are.same({ 0, "", "Lua warning: from child\n" }, { r.status, r.out, r.err })
  end)

  it("-- stops option handling: the next word is the script, options after it are its arguments", function()
    local args = { "-e", "x = 1", "--", "args.lua", "-e", "y" }
    local r = mb(args)
    assert.are.equal(0, r.status)
    assert.is_truthy(has(r.out, "n=2\t-e\ty\n"))
    assert.are.equal(as_moonbeam(lua(args).out), r.out)
  end)

  it("-- with nothing after it runs stdin", function()
    local r = mb({ "--" }, { stdin = "print('stdin ran', ...)\n" })
    assert.are.same({ 0, "stdin ran\n", "" }, { r.status, r.out, r.err })
  end)

  it("- runs the script read from stdin, with the arguments after it", function()
    local src = "print(1, ...) print(arg[0], arg[1], arg[2])\n"
    local r = mb({ "-", "a", "b" }, { stdin = src })
    assert.are.same({ 0, "1\ta\tb\n-\ta\tb\n", "" }, { r.status, r.out, r.err })
    assert.are.equal(lua({ "-", "a", "b" }, { stdin = src }).out, r.out)
  end)

  it("runs LUA_INIT code before -e, with arg already set", function()
    local args = { "-e", "print('main')", "args.lua", "a" }
    local env = { LUA_INIT = "print('init', #arg, arg[1])" }
    local r = mb(args, { env = env })
    assert.are.equal(0, r.status)
    assert.are.equal("init\t1\ta\nmain\n", r.out:sub(1, #"init\t1\ta\nmain\n"))
    assert.are.equal(as_moonbeam(lua(args, { env = env }).out), r.out)
  end)

  it("runs LUA_INIT=@file as a file", function()
    local r = mb({ "-e", "print('main')" }, { env = { LUA_INIT = "@init_file.lua" } })
    assert.are.same({ 0, "init file\ttrue\nmain\n", "" }, { r.status, r.out, r.err })
  end)

  it("prefers LUA_INIT_5_4 to LUA_INIT (code form)", function()
    local r = mb({ "-e", "print('main')" },
                 { env = { LUA_INIT = "print('init')", LUA_INIT_5_4 = "print('init54')" } })
    assert.are.same({ 0, "init54\nmain\n", "" }, { r.status, r.out, r.err })
  end)

  it("prefers LUA_INIT_5_4 to LUA_INIT (@file form)", function()
    local r = mb({ "-e", "print('main')" },
                 { env = { LUA_INIT = "print('init')", LUA_INIT_5_4 = "@init_file.lua" } })
    assert.are.same({ 0, "init file\ttrue\nmain\n", "" }, { r.status, r.out, r.err })
  end)

  it("an error in LUA_INIT stops everything with status 1, named as lua names it", function()
    local env = { LUA_INIT_5_4 = "error('bad init')" }
    local r = mb({ "-e", "print('main')" }, { env = env })
    local l = lua({ "-e", "print('main')" }, { env = env })
    assert.are.equal(1, r.status)
    assert.are.equal("", r.out)
    assert.are.equal(MOONBEAM .. ": LUA_INIT_5_4:1: bad init", first_line(r.err))
    assert.are.equal(as_moonbeam(first_line(l.err)), first_line(r.err))
  end)

  it("an unknown option prints 'unrecognized option' and the usage on stderr, status 1, runs nothing", function()
    for _, opt in ipairs({ "-x", "--foo", "-vx", "-Ex" }) do
      local r = mb({ "-e", "print('ran')", opt })
      local l = lua({ "-e", "print('ran')", opt })
      assert.are.equal(1, r.status)
      assert.are.equal("", r.out)
      assert.are.equal(MOONBEAM .. ": unrecognized option '" .. opt .. "'", first_line(r.err))
      assert.are.equal(as_moonbeam(first_line(l.err)), first_line(r.err))
      assert.is_truthy(has(r.err, "\nusage: " .. MOONBEAM .. " [options] [script [args]]\n"))
    end
  end)

  it("-e or -l without an argument prints \"'-e' needs argument\" and the usage, status 1", function()
    for _, args in ipairs({ { "-e" }, { "-l" }, { "-e", "-v" } }) do
      local r = mb(args)
      local l = lua(args)
      assert.are.equal(1, r.status)
      assert.are.equal("", r.out)
      assert.are.equal(MOONBEAM .. ": '" .. args[1] .. "' needs argument", first_line(r.err))
      assert.are.equal(as_moonbeam(first_line(l.err)), first_line(r.err))
      assert.is_truthy(has(r.err, "\nusage: " .. MOONBEAM .. " [options] [script [args]]\n"))
    end
  end)

  it("-S 1 runs one scheduler: a busy process is never running at the same time as another", function()
    local r = mb({ "-S", "1", "schedulers.lua" })
    assert.are.same({ 0, "running=0\n", "" }, { r.status, r.out, r.err })
  end)

  it("-S 2 runs two schedulers: a busy process runs while another does", function()
    local r = mb({ "-S", "2", "schedulers.lua" })
    assert.are.equal(0, r.status)
    local running = tonumber(r.out:match("^running=(%d+)\n$"))
    assert.is_truthy(running and running > 0, r.out)
  end)

  it("-S with 0, a non-number or nothing is an error with the usage, status 1, runs nothing", function()
    for _, args in ipairs({ { "-S", "0", "-e", "print('ran')" }, { "-S", "x", "-e", "print('ran')" },
                            { "-S0", "-e", "print('ran')" }, { "-S" } }) do
      local r = mb(args)
      assert.are.equal(1, r.status)
      assert.are.equal("", r.out)
      assert.are.equal(MOONBEAM .. ": ", first_line(r.err):sub(1, #MOONBEAM + 2))
      assert.is_truthy(has(first_line(r.err), "'-S"), r.err)
      assert.is_truthy(has(r.err, "\nusage: " .. MOONBEAM .. " [options] [script [args]]\n"))
    end
  end)

  it("puts -S and --no-halt in arg's negative indices like other options", function()
    local code = "print(arg[-6], arg[-5], arg[-4], arg[-3], arg[-2], arg[0], #arg) os.exit(0)"
    local r = mb({ "-S", "2", "--no-halt", "-e", code, "args.lua", "a" })
    assert.are.same({ 0, table.concat({ MOONBEAM, "-S", "2", "--no-halt", "-e", "args.lua", "1" }, "\t") .. "\n" },
                    { r.status, r.out })
  end)
end)

describe("moonbeam command arg table", function()
  it("gives arg and ... exactly as lua5.4 for `-e \"\" args.lua a b`", function()
    local r = mb({ "-e", "", "args.lua", "a", "b" })
    local l = lua({ "-e", "", "args.lua", "a", "b" })
    assert.are.equal(0, r.status)
    assert.are.equal(table.concat({ "-3\t" .. MOONBEAM, "-2\t-e", "-1\t", "0\targs.lua", "1\ta", "2\tb",
                                    "n=2\ta\tb", "" }, "\n"), r.out)
    assert.are.equal(as_moonbeam(l.out), r.out)
  end)

  it("gives arg[0] = the interpreter and no ... for a script read from a redirected stdin", function()
    local r = mb({}, { stdin_file = FIX .. "/stdin_script.lua" })
    local l = lua({}, { stdin_file = FIX .. "/stdin_script.lua" })
    assert.are.same({ 0, "from stdin\t0\t" .. MOONBEAM .. "\n", "" }, { r.status, r.out, r.err })
    assert.are.equal(as_moonbeam(l.out), r.out)
  end)
end)

describe("moonbeam command exit status", function()
  it("is 0 for a script that ends normally", function()
    local r = mb({ "args.lua" })
    assert.are.same({ 0, "" }, { r.status, r.err })
  end)

  it("is 1 for a script that raises, with 'progname: file:line: msg' and a traceback on stderr", function()
    local r = mb({ "boom.lua" })
    local l = lua({ "boom.lua" })
    assert.are.equal(1, r.status)
    assert.are.equal("", r.out)
    local e = lines(r.err)
    assert.are.equal(MOONBEAM .. ": boom.lua:2: boom", e[1])
    assert.are.equal(as_moonbeam(first_line(l.err)), e[1])
    assert.are.equal("stack traceback:", e[2])
    assert.is_truthy(has(r.err, "boom.lua:2: in "))
  end)

  it("is 1 for a syntax error, with lua's message and no traceback", function()
    local r = mb({ "syntax.lua" })
    local l = lua({ "syntax.lua" })
    assert.are.equal(1, r.status)
    assert.are.equal(MOONBEAM .. ": syntax.lua:2: unexpected symbol near '='\n", r.err)
    assert.are.equal(as_moonbeam(l.err), r.err)
  end)

  it("is 1 for a script that cannot be opened, with lua's message", function()
    local r = mb({ "no_such_script.lua" })
    local l = lua({ "no_such_script.lua" })
    assert.are.equal(1, r.status)
    assert.is_truthy(has(first_line(r.err), MOONBEAM .. ": cannot open no_such_script.lua"), r.err)
    assert.are.equal(as_moonbeam(l.err), r.err)
  end)

  it("is 1 for an error object with __tostring, printed through it", function()
    local r = mb({ "error_tostring.lua" })
    local l = lua({ "error_tostring.lua" })
    assert.are.equal(1, r.status)
    assert.are.equal(MOONBEAM .. ": custom error 17", first_line(r.err))
    assert.are.equal(as_moonbeam(first_line(l.err)), first_line(r.err))
  end)

  it("is 1 for an error object that is a table without __tostring", function()
    local r = mb({ "error_table.lua" })
    local l = lua({ "error_table.lua" })
    assert.are.equal(1, r.status)
    assert.are.equal(MOONBEAM .. ": (error object is a table value)", first_line(r.err))
    assert.are.equal(as_moonbeam(first_line(l.err)), first_line(r.err))
  end)

  it("os.exit(3) exits with 3, flushing what was written", function()
    local r = mb({ "-e", "io.write('partial') os.exit(3) print('not reached')" })
    assert.are.same({ 3, "partial", "" }, { r.status, r.out, r.err })
  end)

  it("os.exit(true) and os.exit() exit with 0, os.exit(false) with 1", function()
    assert.are.equal(0, mb({ "-e", "os.exit(true)" }).status)
    assert.are.equal(0, mb({ "-e", "os.exit()" }).status)
    assert.are.equal(1, mb({ "-e", "os.exit(false)" }).status)
  end)

  it("os.exit in a spawned process halts everything with its status", function()
    local r = mb({ "halt_spawned.lua" })
    assert.are.same({ 5, "child halts\n", "" }, { r.status, r.out, r.err })
    assert.is_true(r.ms < 8000, "took " .. r.ms .. " ms")
  end)

  it("exits with 0 promptly when the script ends while other processes still run", function()
    local r = mb({ "ends_early.lua" })
    assert.are.same({ 0, "script done\n", "" }, { r.status, r.out, r.err })
    assert.is_true(r.ms < 5000, "took " .. r.ms .. " ms")
  end)

  it("without --no-halt, ends with the script, before a pending timer fires", function()
    local r = mb({ "no_halt.lua" })
    assert.are.same({ 0, "script done\n", "" }, { r.status, r.out, r.err })
  end)

  it("with --no-halt, keeps running after the script until a process calls os.exit", function()
    local r = mb({ "--no-halt", "no_halt.lua" })
    assert.are.same({ 4, "script done\n", "" }, { r.status, r.out, r.err })
    assert.is_true(r.ms >= 290 and r.ms < 10000, "took " .. r.ms .. " ms")
  end)
end)

describe("moonbeam command output", function()
  it("never interleaves lines printed by many processes", function()
    local r = mb({ "print_storm.lua" })
    assert.are.equal(0, r.status)
    assert.are.equal("", r.err)
    local next_index, bad, count = {}, {}, 0
    for p = 1, 8 do next_index[p] = 1 end
    for l in r.out:gmatch("([^\n]*)\n") do
      count = count + 1
      local p, i, fill = l:match("^P(%d)\t(%d%d%d%d%d)\t(%u+)$")
      p, i = tonumber(p), tonumber(i)
      if not p or #l ~= 200 or next_index[p] ~= i
          or fill ~= string.rep(string.char(string.byte("A") + p - 1), #fill) then
        bad[#bad + 1] = l
      else
        next_index[p] = i + 1
      end
    end
    assert.are.same({}, { table.unpack(bad, 1, 3) })
    assert.are.equal(16000, count)
    assert.are.same({ 2001, 2001, 2001, 2001, 2001, 2001, 2001, 2001 }, next_index)
    assert.is_true(r.out:sub(-1) == "\n")
  end)
end)

describe("moonbeam command C modules", function()
  local function expect(name, result)
    local t = {}
    for i = 1, 3 do t[i] = table.concat({ name, i, "true", result }, "\t") end
    return t
  end

  local cases = {
    lpeg = "1+22+333=356",
    lfs = FIX .. "|file",
    ["term.core"] = "isatty(stdin)=false",
    ["system.core"] = "slept=true clock=true",
  }

  for _, name in ipairs({ "lpeg", "lfs", "term.core", "system.core" }) do
    it("loads " .. name .. " in several spawned processes at once", function()
      local r = mb({ "c_modules.lua", name })
      assert.are.same({ 0, "" }, { r.status, r.err })
      assert.are.same(expect(name, cases[name]), lines(r.out))
    end)
  end

  it("loads all four in twelve processes at once", function()
    local r = mb({ "c_modules.lua", "lpeg", "lfs", "term.core", "system.core" })
    assert.are.same({ 0, "" }, { r.status, r.err })
    local want = {}
    for name, result in pairs(cases) do
      for _, l in ipairs(expect(name, result)) do want[#want + 1] = l end
    end
    table.sort(want)
    assert.are.same(want, lines(r.out))
  end)
end)

describe("moonbeam command as busted's interpreter", function()
  local busted = (function()
    local p = io.popen("command -v busted")
    local path = p:read("l")
    p:close()
    return path or "/usr/bin/busted"
  end)()

  it("runs a spec that spawns processes and passes, with status 0", function()
    local r = run({ busted, "--lua=" .. MOONBEAM, "-p", "_fixture", "-o", "plainTerminal", "busted_pass" })
    assert.are.equal(0, r.status, r.out .. r.err)
    assert.is_truthy(has(r.out, "2 successes / 0 failures / 0 errors / 0 pending"), r.out)
  end)

  it("reports a failing spec and exits non-zero", function()
    local r = run({ busted, "--lua=" .. MOONBEAM, "-p", "_fixture", "-o", "plainTerminal", "busted_fail" })
    assert.are_not.equal(0, r.status)
    assert.is_truthy(has(r.out, "1 success / 1 failure / 0 errors / 0 pending"), r.out)
    assert.is_truthy(has(r.out, "Failure -> busted_fail/fail_fixture.lua @ 6"), r.out)
    assert.is_truthy(has(r.out, "fixture compares the wrong value"), r.out)
  end)
end)

describe("moonbeam command shell", function()
  --- The values the shell printed: stdout lines without the banner and the prompts.
  local function shell_output(out)
    local t = {}
    for i, l in ipairs(lines(out)) do
      if i > 1 then
        local v = l:gsub("^[> ]*", "")
        if v ~= "" then t[#t + 1] = v end
      end
    end
    return t
  end

  it("-i runs statements and expressions, continuing incomplete input, and exits 0 at end of input", function()
    local r = mb({ "-i" }, { stdin = "x = 1 + 1\nprint(x)\nreturn x * 10\nfor i = 1, 2 do\nprint(i)\nend\n" })
    assert.are.equal(0, r.status)
    assert.are.equal("", r.err)
    assert.is_truthy(has(first_line(r.out), "Moonbeam"))
    assert.are.same({ "2", "20", "1", "2" }, shell_output(r.out))
  end)

  it("-i prints an error in a line and goes on", function()
    local r = mb({ "-i" }, { stdin = "error('bad')\nprint('after')\nx = = 2\nprint('after2')\n" })
    assert.are.equal(0, r.status)
    assert.are.same({ "after", "after2" }, shell_output(r.out))
    assert.is_truthy(has(r.err, "stdin:1: bad"), r.err)
    assert.is_truthy(has(r.err, "stdin:1: unexpected symbol near '='"), r.err)
  end)

  it("with stdin not a terminal and no script, runs stdin as a script like lua", function()
    local r = mb({}, { stdin = "print('piped', 1 + 1)\n" })
    assert.are.same({ 0, "piped\t2\n", "" }, { r.status, r.out, r.err })
    assert.are.equal(lua({}, { stdin = "print('piped', 1 + 1)\n" }).out, r.out)
  end)
end)

describe("moonbeam command crash reports", function()
  --- The crash reports in stderr, each as {pid=, reason=, text=}.
  local function reports(err)
    local t = {}
    local starts = {}
    local pos = 1
    while true do
      local i = err:find("=CRASH REPORT====", pos, true)
      if not i then break end
      starts[#starts + 1] = i
      pos = i + 1
    end
    for k, i in ipairs(starts) do
      local text = err:sub(i, (starts[k + 1] or #err + 1) - 1)
      t[#t + 1] = { pid = text:match("\n%s*pid: (<[%d.]+>)\n"),
                    reason = text:match("\n%s*reason: ([^\n]*)\n"), text = text }
    end
    return t
  end

  local function run_crash(kind)
    local r = mb({ "crash.lua", kind })
    assert.are.equal(0, r.status, r.err)
    local target = r.out:match("^target\t(<[%d.]+>)\n")
    local sentinel = r.out:match("\nsentinel\t(<[%d.]+>)\n$")
    assert.is_truthy(target and sentinel, r.out)
    return r, target, sentinel, reports(r.err)
  end

  local function by_pid(list, pid)
    for _, rep in ipairs(list) do
      if rep.pid == pid then return rep end
    end
    return nil
  end

  it("is written on stderr for a spawned process that raises a string", function()
    local r, target, sentinel, list = run_crash("error")
    assert.are.equal(2, #list, r.err)
    assert.is_falsy(has(r.out, "CRASH"))
    local rep = assert(by_pid(list, target), r.err)
    assert.is_truthy(rep.text:find("^=CRASH REPORT==== %d%d?%-%a%a%a%-%d%d%d%d::%d%d:%d%d:%d%d%.%d%d%d ===\n"), rep.text)
    assert.is_truthy(has(rep.text, "pid: <0."))
    assert.is_truthy(has(rep.reason, "kaboom"), rep.reason)
    assert.is_truthy(has(rep.text, "stack traceback:"))
    assert.is_truthy(has(rep.text, "crash.lua:5:"), rep.text)
    assert.is_truthy(by_pid(list, sentinel))
  end)

  it("shows a table reason as {\"boom\"}", function()
    local r, target, _, list = run_crash("table")
    assert.are.equal(2, #list, r.err)
    local rep = assert(by_pid(list, target), r.err)
    assert.are.equal('{"boom"}', rep.reason)
    assert.is_truthy(has(rep.text, "stack traceback:"))
  end)

  for _, kind in ipairs({ "return", "normal", "shutdown", "shutdown_tuple", "killed" }) do
    it("is not written for a process that ends with " .. kind, function()
      local r, target, sentinel, list = run_crash(kind)
      assert.are.equal(1, #list, r.err)
      assert.are.equal(sentinel, list[1].pid)
      assert.is_truthy(has(list[1].reason, "sentinel"))
      assert.is_nil(by_pid(list, target))
    end)
  end
end)
