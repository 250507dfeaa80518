--- http_parser — HTTP/1.1 message parsing (RFC 9112) with LPeg, no sockets involved.
--
-- The server (`http`) and its tests use it; it is pure: every function takes a buffer (a
-- Lua string) and a start index and says what is there.
--
-- * `parse_request(buf, [init = 1], [limits])` → req, next | nil, err, status.
--   req = {method, target, path, query, version, headers, body, keep_alive}: `target` is
--   the request target as sent, `path` its part before "?", `query` the part after it (nil
--   when there is no "?"), `version` "1.0" or "1.1", `headers` a table keyed by lower-case
--   field names (repeated fields joined with ", "), `body` a string ("" when there is
--   none; a chunked body decoded, its trailers dropped), `keep_alive` whether the
--   connection may carry another request after this one. `next` is the index of the first
--   byte after the request (pipelined requests follow there).
--   err is "incomplete" (status nil: more bytes are needed) or one of
--   "bad_request" (400), "uri_too_long" (414), "header_too_large" (431),
--   "body_too_large" (413), "not_implemented" (501, a transfer coding other than
--   chunked), "version_not_supported" (505).
-- * `parse_head(buf, [init], [limits])` → head, next | nil, err, status: the same without the
--   body; head.chunked (true) or head.length (the Content-Length, 0 when absent) says how
--   the body that starts at `next` is framed.
-- * `parse_body(buf, init, head, [limits])` → body, next | nil, err, status.
-- * `parse_response(buf, [init], [opts])` → resp, next | nil, err: resp = {status, reason,
--   version, headers, body}. opts.head: the response to a HEAD request (no body);
--   opts.eof: buf holds everything the peer will send (a body with neither length nor
--   chunking ends there).
-- * `LIMITS`: the default limits: max_header_size (8192 bytes: request line and header
--   fields), max_headers (100 fields), max_body_size (1 MiB, after dechunking).
--
-- Lenient where RFC 9112 allows it: empty lines before a request line are skipped, and a
-- bare LF ends a line as CRLF does. Strict where leniency would be unsafe: whitespace
-- before a field's colon, obsolete line folding, a CR alone, both Transfer-Encoding and
-- Content-Length, differing Content-Length values, and a HTTP/1.1 request without exactly
-- one Host field are all 400.
-- @module http_parser

local lpeg = require "lpeg"

local P, R, S, C, Ct, Cp = lpeg.P, lpeg.R, lpeg.S, lpeg.C, lpeg.Ct, lpeg.Cp
local string_find, string_sub, string_lower = string.find, string.sub, string.lower
local string_match, string_gsub, string_gmatch = string.match, string.gsub, string.gmatch
local tonumber, ipairs, pairs, table_concat = tonumber, ipairs, pairs, table.concat

local M = {}

M.LIMITS = {max_header_size = 8192, max_headers = 100, max_body_size = 1048576}

local STATUS = {bad_request = 400, uri_too_long = 414, header_too_large = 431,
                body_too_large = 413, not_implemented = 501, version_not_supported = 505}

local function fail(err) return nil, err, STATUS[err] end

-- ===================================================================== grammar

local EOL = P"\r\n" + P"\n"
local SP = P" "
local DIGIT = R"09"
local HEX = R("09", "af", "AF")
local tchar = R("az", "AZ", "09") + S"!#$%&'*+-.^_`|~"
local token = tchar^1
local vchar = R"\33\126"
local obs_text = R"\128\255"
local field_char = vchar + obs_text + S" \t"
local OWS = S" \t"^0

local request_line = C(token) * SP * C(vchar^1) * SP * P"HTTP/" * C(DIGIT * "." * DIGIT) * EOL
local status_line = P"HTTP/" * C(DIGIT * "." * DIGIT) * SP * C(DIGIT * DIGIT * DIGIT) * SP
                    * C(field_char^0) * EOL
local field = Ct(C(token) * ":" * OWS * C(field_char^0) * EOL)
local fields = Ct(field^0)
local request_head = request_line * fields * EOL * Cp()
local response_head = status_line * fields * EOL * Cp()
local trailer_section = fields * EOL * Cp()
local chunk_size_line = C(HEX^1) * (P";" * (field_char - S"\r\n")^0)^-1 * EOL * Cp()

-- What a line that has not ended yet may look like: a prefix of a request line, of a
-- header field, or of a chunk-size line.
local request_line_prefix = tchar^0 * (SP * vchar^0 * (SP * (S"HTP/." + DIGIT)^0 * P"\r"^-1)^-1)^-1 * -1
local field_prefix = tchar^0 * (P":" * field_char^0 * P"\r"^-1)^-1 * -1 + P"\r" * -1
local chunk_size_prefix = HEX^0 * (P";" * field_char^0)^-1 * P"\r"^-1 * -1

-- ===================================================================== heads

local function trim(s) return (string_gsub(s, "[ \t]+$", "")) end

--- The header table of a list of {name, value} fields, with the count of each name.
local function header_table(list)
  local headers, count = {}, {}
  for i = 1, #list do
    local name, value = string_lower(list[i][1]), trim(list[i][2])
    local old = headers[name]
    headers[name] = old and (old .. ", " .. value) or value
    count[name] = (count[name] or 0) + 1
  end
  return headers, count
end

--- Whether the part of a head that has arrived could still become a valid head: every
-- whole line matches (the first one `line`, the others `field`) and the unfinished last
-- line is a prefix of one (`prefix`, then `field_prefix`).
local function plausible_prefix(buf, init, line, prefix)
  local pos = init
  while true do
    local e = string_find(buf, "\n", pos, true)
    if not e then return lpeg.match(prefix, string_sub(buf, pos)) ~= nil end
    if not lpeg.match(line, string_sub(buf, pos, e)) then return false end
    line, prefix, pos = field, field_prefix, e + 1
  end
end

--- The comma-separated, lower-cased tokens of a header value.
local function tokens(value)
  local list = {}
  for t in string_gmatch(value or "", "[^,]+") do
    t = string_lower(string_match(t, "^[ \t]*(.-)[ \t]*$"))
    if t ~= "" then list[#list + 1] = t end
  end
  return list
end

local function has_token(value, want)
  for _, t in ipairs(tokens(value)) do if t == want then return true end end
  return false
end

--- How the body is framed: sets head.chunked or head.length, or gives an error.
local function framing(head, limits)
  local h = head.headers
  local te, cl = h["transfer-encoding"], h["content-length"]
  if te then
    if cl or head.version == "1.0" then return "bad_request" end
    local codings = tokens(te)
    if codings[#codings] ~= "chunked" then return "bad_request" end
    if #codings > 1 then
      for i = 1, #codings - 1 do
        if codings[i] == "chunked" then return "bad_request" end
      end
      return "not_implemented"
    end
    head.chunked = true
    return nil
  end
  if cl then
    local n
    for v in string_gmatch(cl .. ",", "[ \t]*([^,]*),") do
      v = trim(v)
      if not string_find(v, "^%d+$") or (n and v ~= n) then return "bad_request" end
      n = v
    end
    n = string_match(n, "^0*(%d-%d)$")
    if #n > 15 or tonumber(n) > limits.max_body_size then return "body_too_large" end
    head.length = tonumber(n)
  else
    head.length = 0
  end
  return nil
end

local function limit_table(limits)
  if limits == nil then return M.LIMITS end
  if limits.max_header_size and limits.max_headers and limits.max_body_size then
    return limits
  end
  local t = {}
  for k, v in pairs(M.LIMITS) do t[k] = limits[k] or v end
  return t
end

function M.parse_head(buf, init, limits)
  init = init or 1
  limits = limit_table(limits)
  init = string_match(buf, "^[\r\n]*()", init)
  local max = limits.max_header_size
  local e = string_find(buf, "\n\r?\n", init)
  if not e or e - init + 1 > max then
    if not e and not plausible_prefix(buf, init, request_line, request_line_prefix) then
      return fail("bad_request")
    end
    if (e or #buf) - init + 1 > max then
      local nl = string_find(buf, "\n", init, true)
      return fail((not nl or nl - init + 1 > max) and "uri_too_long" or "header_too_large")
    end
    return nil, "incomplete"
  end
  local method, target, version, list, next = lpeg.match(request_head, buf, init)
  if not method or next ~= string_find(buf, "\n", e + 1, true) + 1 then
    return fail("bad_request")
  end
  if version ~= "1.1" and version ~= "1.0" then
    return fail(version < "1.0" and "bad_request" or "version_not_supported")
  end
  if #list > limits.max_headers then return fail("header_too_large") end
  local headers, count = header_table(list)
  local path, query = string_match(target, "^([^?]*)%?(.*)$")
  local head = {method = method, target = target, path = path or target, query = query,
                version = version, headers = headers}
  if version == "1.1" and count.host ~= 1 then return fail("bad_request") end
  local err = framing(head, limits)
  if err then return fail(err) end
  if version == "1.1" then
    head.keep_alive = not has_token(headers.connection, "close")
  else
    head.keep_alive = has_token(headers.connection, "keep-alive")
  end
  return head, next
end

-- ===================================================================== bodies

--- The trailer section of a chunked body that starts at pos: next | nil, err.
local function parse_trailers(buf, pos, limits)
  if string_find(buf, "^\r?\n", pos) then return string_find(buf, "\n", pos, true) + 1 end
  local e = string_find(buf, "\n\r?\n", pos)
  if not e then
    if not plausible_prefix(buf, pos, field, field_prefix) then return nil, "bad_request" end
    if #buf - pos + 1 > limits.max_header_size then return nil, "header_too_large" end
    return nil, "incomplete"
  end
  local list, next = lpeg.match(trailer_section, buf, pos)
  if not list or next ~= string_find(buf, "\n", e + 1, true) + 1 then
    return nil, "bad_request"
  end
  return next
end

local function parse_chunked(buf, pos, limits)
  local parts, total = {}, 0
  while true do
    local hex, data = lpeg.match(chunk_size_line, buf, pos)
    if not hex then
      local rest = string_sub(buf, pos)
      if string_find(rest, "\n", 1, true) or #rest > 1024
         or not lpeg.match(chunk_size_prefix, rest) then
        return fail("bad_request")
      end
      return nil, "incomplete"
    end
    hex = string_match(hex, "^0*(.-)$")
    if #hex > 12 then return fail("body_too_large") end
    local size = tonumber(hex ~= "" and hex or "0", 16)
    if size == 0 then
      local next, err = parse_trailers(buf, data, limits)
      if not next then return fail(err) end
      return table_concat(parts), next
    end
    total = total + size
    if total > limits.max_body_size then return fail("body_too_large") end
    local stop = data + size
    if #buf < stop then return nil, "incomplete" end
    local eol = string_match(buf, "^\r?\n()", stop)
    if not eol then
      if #buf == stop or (#buf == stop + 1 and string_sub(buf, stop, stop) == "\r") then
        return nil, "incomplete"
      end
      return fail("bad_request")
    end
    parts[#parts + 1] = string_sub(buf, data, stop - 1)
    pos = eol
  end
end

function M.parse_body(buf, init, head, limits)
  limits = limit_table(limits)
  if head.chunked then return parse_chunked(buf, init, limits) end
  local n = head.length or 0
  if #buf - init + 1 < n then return nil, "incomplete" end
  return string_sub(buf, init, init + n - 1), init + n
end

function M.parse_request(buf, init, limits)
  limits = limit_table(limits)
  local head, pos, status = M.parse_head(buf, init, limits)
  if not head then return nil, pos, status end
  local body, next, st = M.parse_body(buf, pos, head, limits)
  if not body then return nil, next, st end
  head.body = body
  return head, next
end

-- ===================================================================== responses

--- A response: used by the test client, so it is lenient about what a server may send.
function M.parse_response(buf, init, opts)
  init = init or 1
  opts = opts or {}
  local e = string_find(buf, "\n\r?\n", init)
  if not e then return nil, "incomplete" end
  local version, code, reason, list, pos = lpeg.match(response_head, buf, init)
  if not version then return nil, "bad_response" end
  local headers = header_table(list)
  local resp = {version = version, status = tonumber(code), reason = reason, headers = headers}
  local status = resp.status
  if opts.head or status == 204 or status == 304 or status < 200 then
    resp.body = ""
    return resp, pos
  end
  local te, cl = headers["transfer-encoding"], headers["content-length"]
  local body, next, err
  if te and has_token(te, "chunked") then
    body, next = parse_chunked(buf, pos, {max_header_size = math.huge,
                                          max_body_size = math.huge})
  elseif cl then
    if not string_find(cl, "^%d+$") then return nil, "bad_response" end
    body, next = M.parse_body(buf, pos, {length = tonumber(cl)})
  elseif opts.eof then
    body, next = string_sub(buf, pos), #buf + 1
  else
    return nil, "incomplete"
  end
  if not body then
    err = next
    if err == "incomplete" then return nil, err end
    return nil, "bad_response"
  end
  resp.body = body
  return resp, next
end

return M
