--- The harness behind `make bench`: runs every workload of tests/bench/ on Moonbeam and its
-- twin in tests/bench/erl/ on BEAM, interleaved (A B A B ...), at the same thread count,
-- and prints one table of medians, ranges, ratios and peak RSS. Run from the top of the
-- tree by the moonbeam it measures:
--
--   ./moonbeam -S 1 tests/bench/run.lua
--
-- Settings come from the environment (make passes its variables of the same names):
--   BENCH=ring,spawn   only these workloads (default: all; "http" is tests/bench/http.sh,
--                      which make bench runs after this table)
--   RUNS=5             pairs of runs per workload
--   THREADS=2          -S n for Moonbeam and +S n for BEAM
--   BUDGET=60          seconds after which a workload stops repeating (0: never), so a slow
--                      workload still makes at least one pair; the table shows the runs made
--   TIMEOUT=600        seconds before one run is killed and counted as failed
--   MEMLIMIT_MB=16384  address space of one run (ulimit -v), so a runaway cannot take the
--                      machine; 0 lifts it
--   B=build            build directory: beam files in $B/bench/erl, the embed bench
--                      $B/bench/embed, raw output written to $B/bench/raw.txt
-- Without erl (or without the beam files) only the Moonbeam side runs and the table says
-- the comparison was skipped.
-- @module run

local P = process

local function env(name, default)
  local v = os.getenv(name)
  if v == nil or v == "" then return default end
  return v
end

local function env_int(name, default)
  local v = env(name, nil)
  if v == nil then return default end
  local n = math.tointeger(tonumber(v))
  if n == nil or n < 0 then error(name .. " must be a non-negative integer, not " .. v, 0) end
  return n
end

local BUILD = env("B", "build")
local RUNS = math.max(1, env_int("RUNS", 5))
local THREADS = math.max(1, env_int("THREADS", 2))
local BUDGET = env_int("BUDGET", 60)
local TIMEOUT = math.max(1, env_int("TIMEOUT", 600))
local MEMLIMIT_MB = env_int("MEMLIMIT_MB", 16384)
local ERL = env("ERL", "erl")
local DIR = arg[0]:match("^(.*)/") or "."
local OUT = BUILD .. "/bench"

-- the interpreter running this script is the moonbeam under test
local MOONBEAM = arg[0]
for i = -1, -100, -1 do
  if arg[i] == nil then break end
  MOONBEAM = arg[i]
end

-- Each workload: its name (tests/bench/<name>.lua, tests/bench/erl/<name>.erl), the
-- arguments both sides get (the sizes of BENCHMARKS.md), extra erl flags, and the rows of
-- the table: the result line a row reads (where = fields it must have), the metric, its unit.
-- Every metric compared with BEAM is lower-is-better, so the ratio reads the same way on
-- every row.
local WORKLOADS = {
  {name = "ring", args = {1000, 1000}, rows = {
    {label = "ring", metric = "per_op_us", unit = "µs/hop"}}},
  {name = "spawn", args = {100000}, rows = {
    {label = "spawn", metric = "per_op_us", unit = "µs/spawn"},
    {label = "  idle process", metric = "rss_per_proc_bytes", unit = "B RSS/proc"},
    {label = "  exit", metric = "exit_us", unit = "µs/exit"}}},
  {name = "pingpong", args = {1000000}, rows = {
    {label = "pingpong", metric = "per_op_us", unit = "µs/rt"}}},
  {name = "genserver_call", args = {1000000}, rows = {
    {label = "genserver_call", where = {clients = "1"}, metric = "per_op_us", unit = "µs/call"},
    {label = "  8 clients", where = {clients = "8"}, metric = "per_op_us", unit = "µs/call"}}},
  {name = "skynet", args = {1000000}, erl_flags = {"+P", "2000000"}, rows = {
    {label = "skynet", metric = "seconds", unit = "s"}}},
  {name = "big", args = {1000, 1000}, rows = {
    {label = "big", metric = "per_op_us", unit = "µs/msg"}}},
  {name = "fairness", args = {10000}, rows = {
    {label = "fairness loaded p50", where = {mode = "loaded"}, metric = "p50_us", unit = "µs/rt"},
    {label = "  loaded p99", where = {mode = "loaded"}, metric = "p99_us", unit = "µs/rt"},
    {label = "  idle p50", where = {mode = "idle"}, metric = "p50_us", unit = "µs/rt"}}},
  {name = "payload", args = {100000, 2000}, rows = {
    {label = "payload 1kb", where = {variant = "1kb"}, metric = "per_op_us", unit = "µs/rt"},
    {label = "  100kb", where = {variant = "100kb"}, metric = "per_op_us", unit = "µs/rt"}}},
  {name = "embed", moonbeam_only = true, args = {200000}, rows = {
    {label = "embed (C host)", where = {threads = "1"}, metric = "per_round_trip_us", unit = "µs/rt"},
    {label = "  4 host threads", where = {threads = "4"}, metric = "round_trips_per_s", unit = "rt/s"},
    {label = "  runtime life", metric = "runtime_life_ms", unit = "ms"}}},
}

--------------------------------------------------------------------------------------------
-- Running commands

local function quote(s)
  s = tostring(s)
  if s:match("^[%w%-%+%./_=:,]+$") then return s end
  return "'" .. s:gsub("'", "'\\''") .. "'"
end

local function shell_words(words)
  local q = {}
  for i, w in ipairs(words) do q[i] = quote(w) end
  return table.concat(q, " ")
end

local function succeeds(cmd)
  return os.execute(cmd .. " >/dev/null 2>&1") == true
end

local function exists(path)
  local f = io.open(path)
  if f then f:close() end
  return f ~= nil
end

local function read_all(path)
  local f = io.open(path)
  if not f then return "" end
  local s = f:read("a")
  f:close()
  return s
end

local with_beam, with_beam_reason = true, nil
local raw = assert(io.open(OUT .. "/raw.txt", "w"))
local errlog = assert(io.open(OUT .. "/stderr.txt", "w"))

--- Runs argv under timeout and the memory limit. Returns the parsed result lines (arrays of
-- fields by name), nil or a failure description, and the wall time in seconds.
local function run(argv, title)
  local errfile = OUT .. "/last_stderr.txt"
  local cmd = string.format("%sexec timeout -k 10 %d %s 2>%s",
    MEMLIMIT_MB > 0 and string.format("ulimit -v %d; ", MEMLIMIT_MB * 1024) or "",
    TIMEOUT, shell_words(argv), quote(errfile))
  local t0 = P.monotonic()
  local f = assert(io.popen(cmd))
  local out = f:read("a")
  local _, how, code = f:close()
  local wall = (P.monotonic() - t0) / 1000
  local failure
  if how == "signal" then failure = "killed by signal " .. code
  elseif code == 124 or code == 137 then failure = "timed out after " .. TIMEOUT .. " s"
  elseif code ~= 0 then failure = "exit status " .. code end
  local err = read_all(errfile)
  raw:write(string.format("# %s: %s (%.1f s%s)\n", title, shell_words(argv), wall,
    failure and ", " .. failure or ""), out)
  raw:flush()
  if err ~= "" then errlog:write("# ", title, "\n", err) errlog:flush() end
  local lines = {}
  for line in out:gmatch("[^\n]+") do
    if line:match("^bench=") then
      local fields = {}
      for k, v in line:gmatch("(%S+)=(%S+)") do fields[k] = v end
      lines[#lines + 1] = fields
      print(string.format("  %-9s %s", title:match("^%S+"), line))
    end
  end
  if failure then
    print(string.format("  %-9s FAILED (%s)%s", title:match("^%S+"), failure,
      err ~= "" and ": " .. (err:match("[^\n]+") or "") or ""))
  end
  return lines, failure, wall
end

--------------------------------------------------------------------------------------------
-- Collecting results

local function matches(fields, w)
  return fields.bench == w.name
end

local function row_value(lines, w, row)
  for _, fields in ipairs(lines) do
    if matches(fields, w) and fields[row.metric] then
      local ok = true
      for k, v in pairs(row.where or {}) do
        if fields[k] ~= v then ok = false end
      end
      if ok then return tonumber(fields[row.metric]) end
    end
  end
end

local function peak_kb(lines, w)
  for _, fields in ipairs(lines) do
    if matches(fields, w) and fields.peak_rss_kb then return tonumber(fields.peak_rss_kb) end
  end
end

--- One side's results for a workload: per row an array of values, and the peak RSS values.
local function new_side()
  return {values = {}, peaks = {}, failed = 0, runs = 0}
end

local function record(side, w, lines, failure)
  side.runs = side.runs + 1
  if failure then side.failed = side.failed + 1 return end
  for i, row in ipairs(w.rows) do
    side.values[i] = side.values[i] or {}
    local v = row_value(lines, w, row)
    if v then table.insert(side.values[i], v) end
  end
  local kb = peak_kb(lines, w)
  if kb then table.insert(side.peaks, kb) end
end

local function moonbeam_argv(w)
  if w.name == "embed" then return {OUT .. "/embed", table.unpack(w.args)} end
  return {MOONBEAM, "-S", THREADS, DIR .. "/" .. w.name .. ".lua", table.unpack(w.args)}
end

local function beam_argv(w)
  local argv = {"env", "ERL_CRASH_DUMP_SECONDS=0", ERL, "-noshell", "+S", THREADS}
  for _, f in ipairs(w.erl_flags or {}) do argv[#argv + 1] = f end
  for _, a in ipairs({"-pa", OUT .. "/erl", "-run", w.name, "main", table.unpack(w.args)}) do
    argv[#argv + 1] = a
  end
  return argv
end

--- Runs the pairs of one workload; returns {moonbeam = side, beam = side|nil, pairs = n, cut = bool}.
local function measure(w, with_beam)
  local res = {moonbeam = new_side(), beam = (with_beam and not w.moonbeam_only) and new_side() or nil}
  local t0 = P.monotonic()
  print(string.format("%s (%d run%s each)", w.name, RUNS, RUNS > 1 and "s" or ""))
  for i = 1, RUNS do
    local lines, failure = run(moonbeam_argv(w), string.format("moonbeam %s %d/%d", w.name, i, RUNS))
    record(res.moonbeam, w, lines, failure)
    if res.beam then
      lines, failure = run(beam_argv(w), string.format("beam %s %d/%d", w.name, i, RUNS))
      record(res.beam, w, lines, failure)
    end
    res.pairs = i
    if BUDGET > 0 and i < RUNS and (P.monotonic() - t0) / 1000 > BUDGET then
      res.cut = true
      print(string.format("  (stopped after %d of %d: over BUDGET=%d s)", i, RUNS, BUDGET))
      break
    end
  end
  return res
end

--------------------------------------------------------------------------------------------
-- The table

local function median(v)
  local s = {table.unpack(v)}
  table.sort(s)
  local n = #s
  if n % 2 == 1 then return s[(n + 1) // 2], s[1], s[n] end
  return (s[n // 2] + s[n // 2 + 1]) / 2, s[1], s[n]
end

local function num(v)
  local a = math.abs(v)
  if a >= 1000 then return string.format("%.0f", v)
  elseif a >= 100 then return string.format("%.1f", v)
  elseif a >= 10 then return string.format("%.2f", v)
  else return string.format("%.3f", v) end
end

local function cell(values, side)
  if not values or #values == 0 then return "failed" end
  local m, lo, hi = median(values)
  local s = #values > 1 and string.format("%s (%s–%s)", num(m), num(lo), num(hi)) or num(m)
  local missing = side.runs - #values
  if missing > 0 then s = s .. string.format(" [%d failed]", missing) end
  return s, m
end

local function rss_cell(side)
  if not side or #side.peaks == 0 then return "-" end
  return string.format("%.0f", median(side.peaks) / 1024)
end

local function pad(s, width, right)
  local n = utf8.len(s) or #s
  if n >= width then return s end
  return right and string.rep(" ", width - n) .. s or s .. string.rep(" ", width - n)
end

local function print_table(results)
  local header = {"workload", "unit", "runs", "Moonbeam median (min–max)",
                  "BEAM median (min–max)", "ratio", "RSS Moonbeam", "RSS BEAM"}
  local rows = {header}
  for _, r in ipairs(results) do
    local w = r.workload
    for i, row in ipairs(w.rows) do
      local mcell, mm = cell(r.moonbeam.values[i], r.moonbeam)
      local bcell, bm, ratio = "-", nil, "-"
      if r.beam then bcell, bm = cell(r.beam.values[i], r.beam) end
      if mm and bm and bm > 0 then ratio = string.format("%.2f", mm / bm) end
      rows[#rows + 1] = {row.label, row.unit, i == 1 and tostring(r.pairs) .. (r.cut and "*" or "") or "",
                         mcell, bcell, ratio,
                         i == 1 and rss_cell(r.moonbeam) or "", i == 1 and rss_cell(r.beam) or ""}
    end
  end
  local widths = {}
  for _, row in ipairs(rows) do
    for c, s in ipairs(row) do widths[c] = math.max(widths[c] or 0, utf8.len(s) or #s) end
  end
  local cpuinfo, cores = read_all("/proc/cpuinfo"), 0
  for _ in cpuinfo:gmatch("\nprocessor%s*:") do cores = cores + 1 end
  if cpuinfo:match("^processor%s*:") then cores = cores + 1 end
  print()
  print(string.format("make bench, %s, %d cores: Moonbeam -S %d against BEAM +S %d, interleaved",
    os.date("!%Y-%m-%d %H:%M UTC"), cores, THREADS, THREADS))
  print("ratio = Moonbeam / BEAM of the medians (below 1.0: Moonbeam is faster or smaller); RSS: peak, MB")
  for r, row in ipairs(rows) do
    local out = {}
    for c, s in ipairs(row) do out[c] = pad(s, widths[c], c >= 3 and r > 1 and c ~= 4 and c ~= 5) end
    print((table.concat(out, "  "):gsub("%s+$", "")))
  end
  local cut = false
  for _, r in ipairs(results) do cut = cut or r.cut end
  if cut then print(string.format("* fewer runs than RUNS=%d: the workload took longer than BUDGET=%d s", RUNS, BUDGET)) end
  if not with_beam then print("BEAM comparison skipped: " .. with_beam_reason) end
  print("raw lines: " .. OUT .. "/raw.txt, stderr of the runs: " .. OUT .. "/stderr.txt")
end

--------------------------------------------------------------------------------------------
-- Main

local selected, wanted = {}, nil
local filter = env("BENCH", nil)
if filter then
  wanted = {}
  for name in filter:gmatch("[^,%s]+") do wanted[name] = true end
  wanted.http = nil   -- tests/bench/http.sh, which make bench runs after this
  if next(wanted) == nil then os.exit(0) end
end
for _, w in ipairs(WORKLOADS) do
  if not wanted or wanted[w.name] then
    selected[#selected + 1] = w
    if wanted then wanted[w.name] = nil end
  end
end
if wanted and next(wanted) then
  local names = {}
  for _, w in ipairs(WORKLOADS) do names[#names + 1] = w.name end
  io.stderr:write("unknown workload '", next(wanted), "' in BENCH (known: ", table.concat(names, ","), ")\n")
  os.exit(2)
end

if not succeeds("command -v " .. quote(ERL)) then
  with_beam, with_beam_reason = false, ERL .. " not found"
elseif not exists(OUT .. "/erl/bench_util.beam") then
  with_beam, with_beam_reason = false, "no beam files in " .. OUT .. "/erl (erlc missing?)"
end
if not with_beam then print("BEAM comparison skipped: " .. with_beam_reason) end

local results = {}
for _, w in ipairs(selected) do
  if w.name == "embed" and not exists(OUT .. "/embed") then
    print("embed: " .. OUT .. "/embed not built, skipped")
  else
    local r = measure(w, with_beam)
    r.workload = w
    results[#results + 1] = r
  end
end
raw:close()
errlog:close()
print_table(results)
