--- Helpers shared by the benchmark workloads in tests/bench/: argument sizes, the
-- result line every workload prints, and the peak RSS line that ends its output.
-- A workload finds this module with
--   package.path = (arg[0]:match("^(.*)/") or ".") .. "/?.lua;" .. package.path
-- @module benchlib
local M = {}

--- The integer argument #i of the script, or `default` when it is absent.
function M.size(i, default)
  local v = arg and arg[i]
  if v == nil then return default end
  return math.tointeger(tonumber(v)) or error("argument #" .. i .. " is not an integer: " .. v, 2)
end

--- Prints one result line: `bench=<name> <fields...> seconds=S per_op_us=U <extra...>`.
-- fields and extra are arrays of {key, value} (kept in order); ms is the measured phase in
-- milliseconds and ops the number of operations it made.
function M.report(name, fields, ms, ops, extra)
  local parts = {"bench=" .. name}
  for _, kv in ipairs(fields) do parts[#parts + 1] = kv[1] .. "=" .. tostring(kv[2]) end
  parts[#parts + 1] = string.format("seconds=%.3f", ms / 1000)
  parts[#parts + 1] = string.format("per_op_us=%.3f", ms * 1000 / ops)
  for _, kv in ipairs(extra or {}) do parts[#parts + 1] = kv[1] .. "=" .. tostring(kv[2]) end
  print(table.concat(parts, " "))
end

--- A field of /proc/self/status in kB (VmRSS, VmHWM, ...).
function M.status_kb(field)
  local f = assert(io.open("/proc/self/status"))
  local s = f:read("a")
  f:close()
  return tonumber(s:match(field .. ":%s*(%d+)"))
end

--- Prints the last line of a workload: its peak resident set (VmHWM).
function M.peak(name)
  print(string.format("bench=%s peak_rss_kb=%d", name, M.status_kb("VmHWM")))
end

--- Fails the workload (exit status 1) unless ok.
function M.check(ok, what)
  if not ok then
    io.stderr:write("bench check failed: ", what, "\n")
    os.exit(1)
  end
end

return M
