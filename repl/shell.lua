--- moonbeam.shell — the interactive shell, in the manner of `lua`'s.
--
-- Lines come from the line reader's thread as messages, so the schedulers keep running
-- every other process while the user types. An expression's values are printed; a
-- statement runs; input that is incomplete (`<eof>` in the syntax error) asks for more
-- with ">>". Errors print with their traceback and the shell goes on. End of input quits.
-- @module moonbeam.shell

local line = require "moonbeam.line"

local M = {}

local function read(prompt)
  local ref = process.make_ref()
  line.request(process.self(), ref, prompt)
  return process.receive({ref, process.ANY})[2]
end

local function incomplete(err)
  return err and err:sub(-5) == "<eof>"
end

--- Compile a line as an expression (its values get printed) or as a statement.
local function compile(src)
  local chunk = load("return " .. src, "=stdin")
  if chunk then return chunk end
  local err
  chunk, err = load(src, "=stdin")
  while not chunk and incomplete(err) do
    local more = read(">> ")
    if more == nil then return nil, err end
    src = src .. "\n" .. more
    chunk, err = load(src, "=stdin")
  end
  return chunk, err
end

local function handler(err)
  if type(err) ~= "string" then
    local mt = getmetatable(err)
    if mt and mt.__tostring then
      err = tostring(err)
    else
      err = string.format("(error object is a %s value)", type(err))
    end
  end
  return debug.traceback(err, 2)
end

--- As lua's shell: errors without the program name in front.
local function report(msg)
  io.stderr:write(msg, "\n")
  io.stderr:flush()
end

--- Runs the shell until end of input.
function M.run()
  while true do
    local src = read("> ")
    if src == nil then
      io.write("\n")
      return
    end
    local chunk, err = compile(src)
    if not chunk then
      report(err)
    else
      local res = table.pack(xpcall(chunk, handler))
      if not res[1] then
        report(res[2])
      elseif res.n > 1 then
        print(table.unpack(res, 2, res.n))
      end
    end
  end
end

return M
