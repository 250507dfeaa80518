-- bench: hot reload of a gen_server module used by N idle servers (N = arg[1], 10,000 by
-- default). Prints the time of the first require (read + compile + load), of a require in
-- a new process (load of the published bytecode), of code.reload itself, and until every
-- server runs the new version (code.users(name) reports no old-version user), then checks
-- that each server answers with the new code and its old state.
local gen_server = require "gen_server"
local code = require "code"
local P = process
local N = tonumber(arg and arg[1]) or 10000

local dir = os.tmpname()
os.remove(dir)
assert(os.execute("mkdir " .. dir))
package.path = dir .. "/?.lua;" .. package.path

-- a module of a realistic size: the callbacks plus 200 small functions
local function source(tag)
  local parts = {"local M = {}\n",
                 "function M.init(n) return 'ok', n end\n",
                 string.format("function M.handle_call(r, f, n) return 'reply', {%q, n}, n end\n", tag)}
  for i = 1, 200 do
    parts[#parts + 1] = string.format("function M.f%d(x) return x + %d end\n", i, i)
  end
  parts[#parts + 1] = "return M\n"
  return table.concat(parts)
end

local function write(tag)
  local f = assert(io.open(dir .. "/benchmod.lua", "w"))
  f:write(source(tag))
  f:close()
end

local function report(what, ms, extra)
  print(string.format("bench=reload %s n=%d ms=%.3f%s", what, N, ms, extra or ""))
end

write("v1")
local t0 = P.monotonic()
require "benchmod"
report("first_require", P.monotonic() - t0)

local me = P.self()
P.spawn(function()
  local t = P.monotonic()
  require "benchmod"
  P.send(me, P.monotonic() - t)
end)
report("require_in_new_process", P.receive())

local servers = {}
for i = 1, N do servers[i] = assert(gen_server.start("benchmod", i)) end

write("v2")
t0 = P.monotonic()
assert(code.reload("benchmod") == 2)
local t1 = P.monotonic()
local cur, old
repeat
  P.sleep(1)
  cur, old = code.users("benchmod")
  assert(P.monotonic() - t0 < 60000, "servers still on version 1 after 60 s: " .. tostring(old))
until old == 0
local t2 = P.monotonic()
report("code_reload", t1 - t0)
report("all_switched", t2 - t0, string.format(" per_process_us=%.1f users=%d", (t2 - t0) * 1000 / N, cur))

for i = 1, N do
  local r = gen_server.call(servers[i], "get")
  assert(r[1] == "v2" and r[2] == i, "server " .. i .. " did not switch")
end
for i = 1, N do gen_server.stop(servers[i]) end
os.remove(dir .. "/benchmod.lua")
os.remove(dir)
