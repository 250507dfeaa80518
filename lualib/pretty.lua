--- pretty — readable text for any Lua value, for logs, reports and the shell.
--
--     local pretty = require "pretty"
--     pretty.format({"shutdown", {reason = "boom"}})   --> {"shutdown", {reason = "boom"}}
--     print(pretty.format(big_table, {width = 60}))       -- wraps, indenting nested tables
--
-- Strings are quoted (escapes as in Lua source), integers and floats stay apart (`1` and
-- `1.0`), pids and refs print as `<0.42.0>` and `#Ref<…>`. Tables list their array part
-- first, then the other keys in a stable order; a table met again inside itself prints as
-- `<cycle>`. Output longer than `max` characters (default 4000) is cut with `...`.
-- @module pretty

local type, tostring, pairs, ipairs, rawget, getmetatable, pcall =
  type, tostring, pairs, ipairs, rawget, getmetatable, pcall
local math_type, string_format, table_concat, table_sort = math.type, string.format,
  table.concat, table.sort

local M = {}

local KEYWORDS = {}
for w in ([[and break do else elseif end false for function goto if in local nil not or
  repeat return then true until while]]):gmatch("%a+") do
  KEYWORDS[w] = true
end

local function quote(s)
  return (string_format("%q", s):gsub("\\\n", "\\n"):gsub("\r", "\\r"))
end

local function number(n)
  if math_type(n) == "integer" then return tostring(n) end
  if n ~= n then return "nan" end
  if n == math.huge then return "inf" end
  if n == -math.huge then return "-inf" end
  local s = string_format("%.14g", n)
  if not s:find("[%.eEn]") then s = s .. ".0" end
  return s
end

local function scalar(v)
  local t = type(v)
  if t == "string" then return quote(v) end
  if t == "number" then return number(v) end
  if t == "nil" or t == "boolean" then return tostring(v) end
  if t == "userdata" and process and (process.is_pid(v) or process.is_ref(v)) then
    return tostring(v)
  end
  if t == "function" then return "<function>" end
  local ok, s = pcall(tostring, v)
  return ok and s or "<" .. t .. ">"
end

local TYPE_ORDER = {number = 1, string = 2, boolean = 3}

local function key_less(a, b)
  local ta, tb = type(a), type(b)
  if ta ~= tb then return (TYPE_ORDER[ta] or 9) < (TYPE_ORDER[tb] or 9) end
  if ta == "number" or ta == "string" then return a < b end
  return tostring(a) < tostring(b)
end

local function key_text(k)
  if type(k) == "string" and k:match("^[%a_][%w_]*$") and not KEYWORDS[k] then return k end
  return "[" .. scalar(k) .. "]"
end

--- The keys of t that are not in its array part 1..n, sorted.
local function hash_keys(t, n)
  local keys = {}
  for k in pairs(t) do
    if not (math_type(k) == "integer" and k >= 1 and k <= n) then keys[#keys + 1] = k end
  end
  table_sort(keys, key_less)
  return keys
end

local function array_len(t)
  local n = 0
  while rawget(t, n + 1) ~= nil do n = n + 1 end
  return n
end

--- Lays a value out as nested parts: a string, or {open, items, close}.
local function layout(v, seen, depth)
  if type(v) ~= "table" then return scalar(v) end
  local mt = getmetatable(v)
  if type(mt) == "table" and rawget(mt, "__tostring") then
    local ok, s = pcall(tostring, v)
    if ok and type(s) == "string" then return s end
  end
  if seen[v] then return "<cycle>" end
  if depth > 100 then return "{...}" end
  seen[v] = true
  local items, n = {}, array_len(v)
  for i = 1, n do items[#items + 1] = layout(v[i], seen, depth + 1) end
  for _, k in ipairs(hash_keys(v, n)) do
    local val = layout(v[k], seen, depth + 1)
    items[#items + 1] = {key = key_text(k) .. " = ", val = val}
  end
  seen[v] = nil
  return {items = items}
end

local flat

local function flat_item(item)
  if type(item) == "table" and item.key then return item.key .. flat(item.val) end
  return flat(item)
end

function flat(node)
  if type(node) == "string" then return node end
  if #node.items == 0 then return "{}" end
  local parts = {}
  for i, item in ipairs(node.items) do parts[i] = flat_item(item) end
  return "{" .. table_concat(parts, ", ") .. "}"
end

--- Writes node into out, breaking lines when the flat form would pass width.
local function render(node, out, indent, width)
  local one = flat(node)
  if type(node) == "string" or #indent + #one <= width then
    out[#out + 1] = one
    return
  end
  local inner = indent .. "  "
  out[#out + 1] = "{\n"
  for i, item in ipairs(node.items) do
    out[#out + 1] = inner
    if type(item) == "table" and item.key then
      out[#out + 1] = item.key
      render(item.val, out, inner, width)
    else
      render(item, out, inner, width)
    end
    out[#out + 1] = i < #node.items and ",\n" or "\n"
  end
  out[#out + 1] = indent .. "}"
end

--- Text for v. opts: `width` (break lines longer than this; default: never), `indent`
-- (prefix of continuation lines), `max` (cut after this many characters; default 4000).
function M.format(v, opts)
  opts = opts or {}
  local node = layout(v, {}, 0)
  local s
  if opts.width then
    local out, indent = {}, opts.indent or ""
    render(node, out, "", opts.width - #indent)
    s = table_concat(out):gsub("\n", "\n" .. indent)
  else
    s = flat(node)
  end
  local max = opts.max or 4000
  if #s > max then s = s:sub(1, max) .. "..." end
  return s
end

return M
