--- support.lua — small helpers shared by the specs (loaded with dofile, see any spec).
--
-- `dir` is the tests directory and `moonbeam` the binary under test (`$MOONBEAM_BIN`, set
-- by tests/run.sh so the sanitizer builds test themselves, else ./moonbeam), both absolute
-- and with symlinks resolved, so they stay right whatever directory a test runs a command in.
-- @module tests.support

local M = {}

--- Quote a string for /bin/sh.
function M.shell_quote(s)
  return "'" .. s:gsub("'", "'\\''") .. "'"
end

--- The absolute path of a directory, symlinks resolved.
function M.physical_dir(dir)
  local p = assert(io.popen("cd " .. M.shell_quote(dir) .. " && pwd -P"))
  local path = p:read("l")
  p:close()
  return assert(path, "no such directory: " .. dir)
end

function M.read_file(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

function M.write_file(path, s)
  local f = assert(io.open(path, "wb"))
  f:write(s)
  f:close()
end

--- Waits (up to ms) until pred() is truthy; returns its last value.
function M.poll(ms, pred)
  local deadline = process.monotonic() + ms
  local v = pred()
  while not v and process.monotonic() < deadline do
    process.sleep(5)
    v = pred()
  end
  return v
end

M.dir = M.physical_dir(debug.getinfo(1, "S").source:sub(2):match("^(.*)/[^/]*$") or ".")
do
  local bin = os.getenv("MOONBEAM_BIN")
  if bin and bin ~= "" then
    local d, base = bin:match("^(.*)/([^/]*)$")
    M.moonbeam = M.physical_dir(d or ".") .. "/" .. (base or bin)
  else
    M.moonbeam = M.physical_dir(M.dir .. "/..") .. "/moonbeam"
  end
end

return M
