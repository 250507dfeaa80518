--- logger — leveled logging and OTP-style reports on stderr.
--
--     local logger = require "logger"
--     logger.warning("disk %d%% full", 93)
--     logger.report("error", "** Generic server <0.85.0> terminating", {
--       {"last message", msg}, {"reason", reason}})
--
-- Every entry starts with a one-line header in the manner of OTP's legacy format,
-- `=ERROR REPORT==== 21-Nov-2026::08:30:00.123 ===`, followed by the details; values are
-- pretty-printed (see `pretty`). Each entry is written to stderr in one piece, so entries
-- from many processes never mix.
--
-- Levels, most severe first: emergency, alert, critical, error, warning, notice, info,
-- debug. Entries below the current level are dropped; the default is "notice" (as OTP's,
-- so progress reports at "info" stay quiet), or the MOONBEAM_LOG_LEVEL environment
-- variable. The level belongs to the process that sets it (every process has its own
-- copy of this module); set the variable to change it everywhere.
--
-- The runtime writes its crash reports through `logger.crash_report`, and the behaviours
-- write their reports (gen_server terminating, supervisor reports) through `logger.report`.
-- @module logger

local pretty = require "pretty"

local type, tostring, select = type, tostring, select
local string_format, table_concat, os_date, math_floor = string.format, table.concat,
  os.date, math.floor

local M = {}

local LEVELS = {emergency = 0, alert = 1, critical = 2, error = 3, warning = 4, notice = 5,
                info = 6, debug = 7}
local HEADERS = {emergency = "ERROR", alert = "ERROR", critical = "ERROR", error = "ERROR",
                 warning = "WARNING", notice = "NOTICE", info = "INFO", debug = "DEBUG"}

local current = LEVELS[os.getenv("MOONBEAM_LOG_LEVEL") or ""] or LEVELS.notice

local function check_level(level, argn)
  if LEVELS[level] == nil then
    error(string_format("bad argument #%d (unknown log level '%s')", argn, tostring(level)), 3)
  end
end

--- Sets the level of this process; returns the previous one.
function M.set_level(level)
  check_level(level, 1)
  local old = M.level()
  current = LEVELS[level]
  return old
end

function M.level()
  for name, n in pairs(LEVELS) do
    if n == current then return name end
  end
end

--- Would an entry at this level be written?
function M.enabled(level)
  check_level(level, 1)
  return LEVELS[level] <= current
end

--- "21-Nov-2026::08:30:00.123", from milliseconds since the epoch (default: now).
function M.timestamp(ms)
  ms = ms or process.system_time()
  local s = math_floor(ms / 1000)
  return string_format("%s.%03d", os_date("%d-%b-%Y::%H:%M:%S", s), math_floor(ms - s * 1000))
end

local function write(header, body)
  io.stderr:write(string_format("=%s==== %s ===\n%s\n", header, M.timestamp(), body))
end

--- Text for a log call's arguments: a format and its values, or one value of any kind.
local function message(fmt, ...)
  if select("#", ...) > 0 then return string_format(fmt, ...) end
  if type(fmt) == "string" then return fmt end
  return pretty.format(fmt)
end

--- Logs at `level`: `logger.log("info", "started %s", name)`.
function M.log(level, fmt, ...)
  check_level(level, 1)
  if LEVELS[level] > current then return end
  write(HEADERS[level] .. " REPORT", message(fmt, ...))
end

for level in pairs(LEVELS) do
  M[level] = function(fmt, ...)
    if LEVELS[level] > current then return end
    write(HEADERS[level] .. " REPORT", message(fmt, ...))
  end
end

--- Lines "    label: value" (a string value as it is, anything else pretty-printed).
function M.fields(list, indent)
  indent = indent or "    "
  local lines = {}
  for i, f in ipairs(list) do
    local v = f[2]
    if type(v) ~= "string" or f.quote then
      v = pretty.format(v, {width = 96, indent = indent .. "  "})
    end
    lines[i] = indent .. f[1] .. ": " .. v
  end
  return table_concat(lines, "\n")
end

--- A report: a title line, then fields ({label, value} pairs; value pretty-printed unless it
-- is a string; {label, value, quote = true} pretty-prints a string too). `header` names the
-- kind ("CRASH REPORT", "SUPERVISOR REPORT"); by default the level's.
function M.report(level, title, fields, header)
  check_level(level, 1)
  if LEVELS[level] > current then return end
  local body = title or ""
  if fields and #fields > 0 then body = body .. (title and "\n" or "") .. M.fields(fields) end
  write(header or (HEADERS[level] .. " REPORT"), body)
end

--- The runtime's crash report for a process that ended abnormally (called in that process).
-- info: pid, name, initial_call, reason, traceback.
function M.crash_report(info)
  if LEVELS.error > current then return end
  local body = M.fields({{"pid", tostring(info.pid)},
                         {"registered_name", info.name or "[]"},
                         {"initial_call", info.initial_call or "?"},
                         {"reason", info.reason, quote = true}})
  body = "  crasher:\n" .. body
  if info.traceback then body = body .. "\n  " .. info.traceback end
  write("CRASH REPORT", body)
end

return M
