--- moonbeam.cli — the first process of the `moonbeam` command.
--
-- Does what `lua` does with its command line, in the same order: the version banner,
-- the `arg` table, LUA_INIT, `-e`/`-l`/`-W` in order, the script with its arguments, then
-- the shell (with `-i`, or with no script on a terminal) or a script read from stdin.
--
-- Errors at run time propagate out of this process: the runtime prints them as `lua`
-- does ("progname: message" and a traceback) and halts with status 1. Errors while
-- loading a chunk are printed without a traceback, as `lua` prints them.
--
-- In REPL mode (`a.repl`, decided by main.c) the runtime does not halt when this process
-- ends, since the shell may die and be replaced (see moonbeam.shell): so errors before
-- the shell starts are caught here, printed the same way, and end the command with
-- status 1, as `lua -i` does. The shell ends the command itself (os.exit) at end of input.
-- @module moonbeam.cli

local M = {}

local function fail(progname, msg)
  io.stderr:write(progname, ": ", tostring(msg), "\n")
  io.stderr:flush()
  os.exit(1)
end

--- The global `arg`: the script at 0, its arguments after, interpreter options before.
local function make_arg(a)
  local t = {}
  for i = 0, a.argc - 1 do
    t[i - a.script] = a.argv[i]
  end
  return t
end

local function run_chunk(a, chunk, err, ...)
  if not chunk then fail(a.progname, err) end
  return chunk(...)
end

local function run_init(a)
  local name, init = "LUA_INIT_5_4", os.getenv("LUA_INIT_5_4")
  if not init then name, init = "LUA_INIT", os.getenv("LUA_INIT") end
  if not init then return end
  if init:sub(1, 1) == "@" then
    run_chunk(a, loadfile(init:sub(2)))
  else
    run_chunk(a, load(init, "=" .. name))
  end
end

--- As lua's -l: the error of a failed require carries no position of ours.
local function require_global(spec)
  local global, name = spec:match("^([^=]+)=(.+)$")
  if not global then global, name = spec, spec end
  local ok, mod = pcall(require, name)
  if not ok then error(mod, 0) end
  _G[global] = mod
end

--- -e, -l and -W, in command-line order, up to the script.
local function run_options(a)
  local last = a.script > 0 and a.script - 1 or a.argc - 1
  local i = 1
  while i <= last do
    local opt = a.argv[i]
    local kind, rest = opt:sub(2, 2), opt:sub(3)
    if opt == "--" then break end
    if kind == "e" or kind == "l" or kind == "S" then
      if rest == "" then
        i = i + 1
        rest = a.argv[i]
      end
      if kind == "e" then
        run_chunk(a, load(rest, "=(command line)"))
      elseif kind == "l" then
        require_global(rest)
      end
    elseif kind == "W" then
      warn("@on")
    end
    i = i + 1
  end
end

local function run_script(a)
  local name = a.argv[a.script]
  if name == "-" and a.argv[a.script - 1] ~= "--" then name = nil end
  local args = {}
  for i = a.script + 1, a.argc - 1 do
    args[#args + 1] = a.argv[i]
  end
  local chunk, err = loadfile(name)
  run_chunk(a, chunk, err, table.unpack(args, 1, a.argc - 1 - a.script))
end

--- Everything before the shell or the stdin script.
local function prepare(a)
  if a.show_version then print(a.version) end
  _G.arg = make_arg(a)
  if not a.no_env then run_init(a) end
  run_options(a)
  if a.script > 0 then run_script(a) end
end

--- The message handler for REPL mode: what the runtime prints for a failing main process
-- (lua's msghandler, with the traceback ending where lua's ends).
local function traceback(err)
  if type(err) ~= "string" and type(err) ~= "number" then
    local mt = getmetatable(err)
    if mt and mt.__tostring then
      local s = tostring(err)
      if type(s) == "string" then return s end
    end
    err = string.format("(error object is a %s value)", type(err))
  end
  local tb = debug.traceback(tostring(err), 2)
  local cut = tb:find("\n\t(...tail calls...)\n\trepl/cli.lua:", 1, true)
    or tb:find("\n\trepl/cli.lua:", 1, true)
  if cut then tb = tb:sub(1, cut - 1) .. "\n\t[C]: in ?" end
  return tb
end

--- Runs the command line described by `a` (the table of the moonbeam.args module).
function M.main(a)
  if not a.repl then
    prepare(a)
    if a.script == 0 and not a.has_e and not a.show_version then
      run_chunk(a, loadfile(nil))
    end
    return
  end
  local ok, err = xpcall(prepare, traceback, a)
  if not ok then fail(a.progname, err) end
  if not a.interactive then print(a.version) end
  require("moonbeam.shell").run()
end

return M
