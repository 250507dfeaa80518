--- moonbeam.shell — the interactive shell, in the manner of `lua`'s, with Erlang-shell helpers.
--
-- Lines come from the line reader's thread (moonbeam.line) as messages, so the schedulers
-- keep running every other process while the user types, and messages sent to the shell
-- wait in its mailbox. Each line is tried as `return <line>;` first (its values are
-- printed), then as a statement; input that is incomplete (`<eof>` in the syntax error)
-- asks for more with ">>". Values print with pretty.format (strings quoted, tables laid
-- out to the terminal width, from COLUMNS or 80; cycles marked), several separated by tabs.
-- Errors print as lua's shell prints them (message and traceback; a table error value is
-- shown with pretty.format rather than "(error object is a table value)"), and the shell
-- goes on. End of input ends the command with status 0 (os.exit).
--
-- Ctrl-C (handled by the line reader) drops the line being typed, or interrupts the running
-- evaluation with the error "interrupted!".
--
-- The shell traps exits: a linked process that dies (e.g. a gen_server started with
-- start_link) does not take the shell down; its {"EXIT", pid, reason} waits in the
-- mailbox with every other message, for flush(). Only "kill" (or a crash of the shell's
-- own code) ends the shell process: then a keeper process, started with the first shell,
-- prints "*** shell process <pid> exited: <reason>; starting a new shell" and starts a
-- new shell process (fresh globals), which it watches in turn.
--
-- Helpers (globals of the shell, unless the script already defined that global): h() lists
-- them; ps(), i(p), flush(), r(mod), pid(s), kill(p), state(p).
-- @module moonbeam.shell

local line = require "moonbeam.line"
local pretty = require "pretty"
local code = require "code"
local process = require "process"

local ANY = process.ANY

local M = {}

local function width()
  local c = tonumber(os.getenv("COLUMNS"))
  return c and c >= 20 and c or 80
end

local function report(msg)
  io.stderr:write(msg, "\n")
  io.stderr:flush()
end

-- ===================================================================== reading

local TTY = require("moonbeam.args").tty
local IDENT = "^[%a_][%w_]*$"
local MAX_CANDIDATES, MAX_FIELDS = 5000, 500

--- What Tab completes from: global names, "t.k" for the fields of global tables (one
-- level), and module names (loaded here or anywhere in the runtime).
local function candidates()
  local list, seen = {}, {}
  local function add(s)
    if not seen[s] and #list < MAX_CANDIDATES then
      seen[s] = true
      list[#list + 1] = s
    end
  end
  for k, v in next, _G do
    if type(k) == "string" and k:find(IDENT) then
      add(k)
      if type(v) == "table" then
        local n = 0
        for f in next, v do
          if type(f) == "string" and f:find(IDENT) then
            add(k .. "." .. f)
            n = n + 1
            if n >= MAX_FIELDS then break end
          end
        end
      end
    end
  end
  for name in next, package.loaded do
    if type(name) == "string" then add(name) end
  end
  for _, m in ipairs(code.loaded()) do add(m.name) end
  for _, name in ipairs(code.available()) do add(name) end
  return list
end

--- One line: a string, nil at end of input, false if Ctrl-C dropped it.
local function read(prompt)
  local ref = process.make_ref()
  local ok, err = pcall(line.request, process.self(), ref, prompt, TTY and candidates() or nil)
  if not ok then   -- no reader: no shell
    report("moonbeam shell: " .. tostring(err))
    os.exit(1)
  end
  while true do
    -- a Ctrl-C meant for an evaluation that just ended may land here: ask again
    local got, msg = pcall(process.receive, {ref, ANY})
    if got then return msg[2] end
    if msg ~= "interrupted!" then error(msg, 0) end
  end
end

local function incomplete(err)
  return err ~= nil and err:sub(-5) == "<eof>"
end

--- Compile a line as an expression (its values get printed) or as a statement, reading
-- more lines while it is incomplete. false: Ctrl-C dropped the input.
local function compile(src)
  local chunk = load("return " .. src .. ";", "=stdin")
  if chunk then return chunk end
  local err
  chunk, err = load(src, "=stdin")
  while not chunk and incomplete(err) do
    local more = read(">> ")
    if more == nil then return nil, err end
    if more == false then return false end
    src = src .. "\n" .. more
    chunk, err = load(src, "=stdin")
  end
  return chunk, err
end

-- ===================================================================== results and errors

--- As lua's msghandler: the message and a traceback that ends where lua's ends.
local function handler(err)
  if type(err) ~= "string" and type(err) ~= "number" then
    local mt = getmetatable(err)
    if mt and mt.__tostring then
      local ok, s = pcall(tostring, err)
      if ok and type(s) == "string" then return s end
    end
    err = type(err) == "table" and pretty.format(err)
      or string.format("(error object is a %s value)", type(err))
  end
  local tb = debug.traceback(tostring(err), 2)
  local cut = tb:find("\n\t[C]: in function 'xpcall'", 1, true)
  if cut then tb = tb:sub(1, cut - 1) .. "\n\t[C]: in ?" end
  return tb
end

local function show(res)
  local parts, w = {}, width()
  for i = 2, res.n do parts[#parts + 1] = pretty.format(res[i], {width = w}) end
  print(table.concat(parts, "\t"))
end

-- ===================================================================== helpers

local helpers = {}

local HELP = [[
Moonbeam shell helpers (p: a pid, "<0.42.0>", or a registered name):
  h()          this text
  ps()         every process: pid, name (or initial call), status, reductions,
               message queue, memory, current function
  i(p)         everything process.info knows about p
  flush()      print and remove the messages in the shell's mailbox; returns "ok"
  r("mod")     reload module mod from its file; the processes using it switch to the
               new version at their next receive (gen_servers: at their next message)
  pid("<0.42.0>")  the pid with that text (also pid(0, 42, 0))
  kill(p)      send p the exit signal "kill"
  state(p)     the state of a gen_server (sys.get_state)
The shell is a process: process.self(), receive, send all work. It traps exits, so a
linked process's {"EXIT", pid, reason} waits in its mailbox (see flush()).
Ctrl-C drops the line being typed or interrupts the evaluation; Ctrl-D quits.]]

function helpers.h()
  print(HELP)
end

local PID_TEXT = "^<?%d+%.%d+%.%d+>?$"

--- A pid from a pid, its text, or a registered name.
local function topid(p, level)
  if process.is_pid(p) then return p end
  if type(p) == "string" then
    if p:find(PID_TEXT) then return process.topid(p) end
    local found = process.whereis(p)
    if found then return found end
    error(string.format("no process registered as '%s'", p), level + 1)
  end
  error("pid, \"<0.N.0>\" or registered name expected, got " .. type(p), level + 1)
end

local function where(cur)
  if type(cur) ~= "table" or not cur.source then return "" end
  local s = cur.source .. (cur.line and cur.line > 0 and ":" .. cur.line or "")
  if cur.name then s = s .. " (" .. cur.name .. ")" end
  return s
end

function helpers.ps()
  local rows = {{"Pid", "Name or initial call", "Status", "Reds", "MsgQ", "Memory",
                 "Current function"}}
  local pids = process.list()
  table.sort(pids)
  for _, p in ipairs(pids) do
    local info = process.info(p)
    if info then
      rows[#rows + 1] = {tostring(p), info.name or info.initial_call or "", info.status,
                         tostring(info.reductions), tostring(info.message_queue_len),
                         tostring(info.memory), where(info.current)}
    end
  end
  local widths = {}
  for _, row in ipairs(rows) do
    for c, v in ipairs(row) do widths[c] = math.max(widths[c] or 0, #v) end
  end
  local out = {}
  for r, row in ipairs(rows) do
    local cells = {}
    for c, v in ipairs(row) do
      local right = c >= 4 and c <= 6   -- numbers line up on the right
      cells[c] = c == #row and v
        or string.format("%" .. (right and "" or "-") .. widths[c] .. "s", v)
    end
    out[r] = table.concat(cells, "  ")
  end
  print(table.concat(out, "\n"))
end

function helpers.i(p)
  local pid = topid(p, 2)
  local info = process.info(pid)
  if not info then
    print(tostring(pid) .. " is not alive")
    return
  end
  info.pid = pid
  print(pretty.format(info, {width = width()}))
end

function helpers.flush()
  while true do
    local msg = process.receive(nil, 0)
    if msg == nil then break end
    print("Shell got " .. pretty.format(msg))
  end
  return "ok"
end

function helpers.r(name)
  if type(name) ~= "string" then
    error("bad argument #1 to 'r' (module name expected, got " .. type(name) .. ")", 2)
  end
  local before = code.users(name)
  local vsn, err = code.reload(name)
  if not vsn then return nil, err end
  code.switch()   -- the shell itself, then the others: the reload woke them
  local deadline, stuck = process.monotonic() + 200
  repeat
    process.sleep(5)
    local _, old = code.users(name)
    stuck = old
  until stuck == 0 or process.monotonic() > deadline
  local switched = math.max(before - stuck, 0)
  local text = string.format("reloaded %s (version %d): %d %s switched", name, vsn, switched,
                             switched == 1 and "process" or "processes")
  if stuck > 0 then
    text = text .. string.format("; %d still %s the old version", stuck,
                                 stuck == 1 and "runs" or "run")
  end
  print(text)
end

function helpers.pid(a, b, c)
  if process.is_pid(a) then return a end
  if b == nil then
    if type(a) ~= "string" then
      error("bad argument #1 to 'pid' (pid text like \"<0.42.0>\" expected, got " .. type(a) .. ")", 2)
    end
    return process.topid(a)
  end
  local parts = {a, b, c}
  for i = 1, 3 do
    local v = parts[i]
    if math.type(v) ~= "integer" or v < 0 then
      error(string.format("bad argument #%d to 'pid' (non-negative integer expected, got %s)", i,
                          v == nil and "no value" or tostring(v)), 2)
    end
  end
  return process.topid(string.format("<%d.%d.%d>", a, b, c))
end

function helpers.kill(p)
  return process.exit(topid(p, 2), "kill")
end

function helpers.state(p)
  if type(p) == "string" and p:find(PID_TEXT) then p = process.topid(p) end
  return require("sys").get_state(p)
end

-- ===================================================================== the loop

local function setup()
  process.flag("trap_exit", true)
  for name, f in pairs(helpers) do
    if rawget(_G, name) == nil then _G[name] = f end
  end
end

local keeper   -- the keeper's pid

--- One line (or one multi-line input): read, compile, run, print.
local function step()
  local src = read("> ")
  if src == nil then
    io.write("\n")
    process.exit(keeper, "kill")   -- before this process ends: no new shell
    os.exit(0)
  end
  if src == false then return end
  local chunk, err = compile(src)
  if chunk == false then return end
  if not chunk then
    report(err)
    return
  end
  local res = table.pack(xpcall(chunk, handler))
  if not res[1] then
    report(res[2])
  elseif res.n > 1 then
    show(res)
  end
end

--- A Ctrl-C meant for an evaluation that had just ended can land while the shell reads or
-- compiles: it is dropped, and the prompt comes again.
local function stray_interrupt(err)
  return type(err) == "string" and err:sub(1, 12) == "interrupted!"
end

local function loop()
  while true do
    local ok, err = xpcall(step, handler)
    if not ok and not stray_interrupt(err) then report(err) end
  end
end

--- A shell process the keeper started: fresh globals, the helpers, the loop.
function M.session(keeper_pid)
  keeper = keeper_pid
  setup()
  loop()
end

local RESTARTS, PERIOD = 10, 5000

--- Watches the shell and starts a new one whenever it dies (more than RESTARTS deaths
-- within PERIOD ms: the shell cannot run, and the command ends with status 1).
function M.keeper(shell)
  local recent = {}
  process.monitor(shell)
  process.send(shell, {"keeper_ready", process.self()})
  while true do
    local down = process.receive({"DOWN", ANY, "process", ANY, ANY})
    local reason = down[5]
    print(string.format("*** shell process %s exited: %s; starting a new shell", tostring(down[4]),
                        type(reason) == "string" and reason or pretty.format(reason)))
    local now = process.monotonic()
    recent[#recent + 1] = now
    while recent[1] < now - PERIOD do table.remove(recent, 1) end
    if #recent > RESTARTS then
      print("*** the shell keeps dying; giving up")
      os.exit(1)
    end
    process.spawn_monitor("moonbeam.shell.session", process.self())
  end
end

--- Runs the shell in this process (the first one; a keeper watches it) until end of input.
function M.run()
  setup()
  keeper = process.spawn("moonbeam.shell.keeper", process.self())
  -- wait until the keeper monitors this process, or a quick death would read as noproc
  process.receive({"keeper_ready", keeper})
  loop()
end

return M
