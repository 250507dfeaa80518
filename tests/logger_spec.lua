-- logger_spec.lua — lualib/logger.lua: levels, report layout, the runtime's crash reports.
-- Logs go to stderr, so most tests run a small script in a child moonbeam and read it.
local support = dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "support.lua")
local logger = require "logger"

--- Runs `code` in a child moonbeam; returns its stderr and exit status.
local function stderr_of(code, env)
  local script = os.tmpname()
  local err = os.tmpname()
  support.write_file(script, code)
  local cmd = (env or "") .. " timeout 20 " .. support.shell_quote(support.moonbeam) .. " " ..
              support.shell_quote(script) .. " 2>" .. support.shell_quote(err) .. " >/dev/null"
  local _, _, status = os.execute(cmd)
  local text = support.read_file(err)
  os.remove(script)
  os.remove(err)
  return text, status
end

local HEADER = "=(%u+ REPORT)==== %d%d%-%a%a%a%-%d%d%d%d::%d%d:%d%d:%d%d%.%d%d%d ===\n"

describe("logger", function()
  it("knows the eight levels, notice by default", function()
    assert.are.equal("notice", logger.level())
    assert.is_true(logger.enabled("error"))
    assert.is_true(logger.enabled("notice"))
    assert.is_false(logger.enabled("info"))
    assert.are.equal("notice", logger.set_level("debug"))
    assert.is_true(logger.enabled("debug"))
    logger.set_level("notice")
    local ok, err = pcall(logger.set_level, "loud")
    assert.is_false(ok)
    assert.is_truthy(err:find("unknown log level 'loud'", 1, true), err)
  end)

  it("formats timestamps as OTP's legacy header does", function()
    local ms = os.time({year = 2026, month = 11, day = 21, hour = 8, min = 30, sec = 0}) * 1000 + 123
    assert.are.equal("21-Nov-2026::08:30:00.123", logger.timestamp(ms))
  end)

  it("writes one header line per entry, at or above the level, with printf-style arguments", function()
    local text = stderr_of([[
      local logger = require "logger"
      logger.error("disk %d%% full", 93)
      logger.info("not shown")
      logger.warning({reason = "x"})
      logger.set_level("info")
      logger.info("shown now")
    ]])
    local entries, pos = {}, 1
    while true do
      local s, e, header = text:find(HEADER, pos)
      if not s then break end
      local next_s = text:find("\n=%u+ REPORT====", e) or #text
      entries[#entries + 1] = header .. "|" .. text:sub(e + 1, next_s)
      pos = next_s
    end
    assert.are.same({"ERROR REPORT|disk 93% full\n", 'WARNING REPORT|{reason = "x"}\n',
                     "INFO REPORT|shown now\n"}, entries)
  end)

  it("takes its level from MOONBEAM_LOG_LEVEL", function()
    local text = stderr_of('require("logger").info("hello")', "MOONBEAM_LOG_LEVEL=info")
    assert.is_truthy(text:find("INFO REPORT", 1, true), text)
    text = stderr_of('require("logger").error("hello")', "MOONBEAM_LOG_LEVEL=critical")
    assert.are.equal("", text)
  end)

  it("lays reports out as a title and pretty-printed fields", function()
    local text = stderr_of([[
      require("logger").report("error", "** something failed", {
        {"reason", {"shutdown", 1}}, {"note", "plain text"}, {"quoted", "text", quote = true}},
        "SUPERVISOR REPORT")
    ]])
    assert.is_truthy(text:match("^" .. HEADER), text)
    assert.is_truthy(text:find('** something failed\n    reason: {"shutdown", 1}\n' ..
                               '    note: plain text\n    quoted: "text"\n', 1, true), text)
    assert.are.equal("SUPERVISOR REPORT", text:match(HEADER))
  end)

  it("writes the runtime's crash reports, with registered name and traceback", function()
    local text = stderr_of([[
      local p = process.spawn_opt({name = "crasher1", monitor = true}, function()
        error({"boom", n = 1})
      end)
      process.receive({"DOWN"}, 2000)
    ]])
    assert.are.equal("CRASH REPORT", text:match(HEADER), text)
    assert.is_truthy(text:find("  crasher:\n    pid: <0%.%d+%.%d+>\n"), text)
    assert.is_truthy(text:find("    registered_name: crasher1\n", 1, true), text)
    assert.is_truthy(text:find('    reason: {"boom", n = 1}\n', 1, true), text)
    assert.is_truthy(text:find("  stack traceback:\n\t[C]: in function 'error'", 1, true), text)
  end)

  it("stays quiet for normal, shutdown and {\"shutdown\", x} ends and below its level", function()
    local text = stderr_of([[
      for _, r in ipairs({"normal", "shutdown", {"shutdown", 1}}) do
        local p, ref = process.spawn_monitor(function(r) process.exit(r) end, r)
        process.receive({"DOWN", ref}, 2000)
      end
    ]])
    assert.are.equal("", text)
    text = stderr_of([[
      local p, ref = process.spawn_monitor(function() error("x", 0) end)
      process.receive({"DOWN", ref}, 2000)
    ]], "MOONBEAM_LOG_LEVEL=critical")
    assert.are.equal("", text)
  end)
end)
