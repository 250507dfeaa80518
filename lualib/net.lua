--- net — TCP and UDP sockets for processes, in the manner of Erlang's gen_tcp and gen_udp.
--
-- A blocking call blocks only the calling process: the call first tries the system call
-- without blocking (data already there is read at once; a write that fits goes straight
-- out); a read that finds nothing yields once and tries again (the peer is often a process
-- of this runtime); then it asks the runtime's I/O thread to tell it when the socket is
-- ready, and waits in a receive for that message, with the call's timeout.
--
--     local net = require "net"
--     local ls = assert(net.listen(0))
--     local ip, port = net.sockname(ls)
--     local s = assert(net.accept(ls, 5000))
--     local data, err = s:recv(0, 5000)      -- nil, "timeout" | "closed" | ...
--     s:send(data)
--     s:close()
--
-- Active mode ({active = true | "once" | N}): the owner gets {"tcp", sock, data},
-- {"tcp_closed", sock}, {"tcp_error", sock, reason} and, when N runs out,
-- {"tcp_passive", sock}; UDP sockets {"udp", sock, ip, port, data}.
--
-- Every failure returns nil, reason ("closed", "timeout", "econnrefused", "not_owner",
-- errno names in lower case); bad arguments raise. The contract is /work/net_api.md.
-- @module net

local process = require "process"
local core = require "net.core"

local error, getmetatable, ipairs, math_type, pairs, pcall, tostring, type =
  error, getmetatable, ipairs, math.type, pairs, pcall, tostring, type
local concat, format = table.concat, string.format
local make_ref, receive, monotonic, send, alias, unalias, is_pid, self, any_of, yield =
  process.make_ref, process.receive, process.monotonic, process.send, process.alias,
  process.unalias, process.is_pid, process.self, process.any_of, process.yield

local SOCK = core.metatable

local M = {}

-- ================================================================ arguments

local function argerr(fname, i, msg)
  error(format("bad argument #%d to '%s' (%s)", i, fname, msg), 3)
end

local function typename(v)
  if getmetatable(v) == SOCK then return "socket" end
  if is_pid(v) then return "pid" end
  return type(v)
end

local function checksock(fname, i, s)
  if getmetatable(s) ~= SOCK then
    error(format("bad argument #%d to '%s' (socket expected, got %s)", i, fname, typename(s)), 3)
  end
end

-- The deadline (monotonic ms) of a timeout argument; nil for no timeout.
local function deadline_of(fname, i, t)
  if t == nil or t == "infinity" then return nil end
  if type(t) ~= "number" then
    error(format("bad argument #%d to '%s' (timeout (ms or \"infinity\") expected, got %s)",
                 i, fname, typename(t)), 3)
  end
  if not (t >= 0) then
    error(format("bad argument #%d to '%s' (timeout must not be negative)", i, fname), 3)
  end
  if t == math.huge then return nil end
  return monotonic() + t
end

local function checkport(fname, i, port, allow0)
  if math_type(port) ~= "integer" or port < (allow0 and 0 or 1) or port > 65535 then
    error(format("bad argument #%d to '%s' (port (integer %d..65535) expected, got %s)", i,
                 fname, allow0 and 0 or 1, math_type(port) or typename(port)), 3)
  end
end

local function is_bool(v) return v == true or v == false end
local function is_pos(v) return math_type(v) == "integer" and v > 0 end

-- The socket options, each with the check of its value.
local OPTS = {
  active = function(v)
    return is_bool(v) or v == "once" or (math_type(v) == "integer" and v >= -32767 and v <= 32767)
  end,
  packet = function(v) return v == "raw" or v == "line" or v == 1 or v == 2 or v == 4 end,
  packet_size = is_pos,
  nodelay = is_bool,
  keepalive = is_bool,
  reuseaddr = is_bool,
  broadcast = is_bool,
  recbuf = is_pos,
  sndbuf = is_pos,
  linger = function(v) return v == false or (math_type(v) == "integer" and v >= 0) end,
}

-- Options a call takes besides the socket options.
local LISTEN_EXTRA = {ip = "string", backlog = "integer"}
local UDP_EXTRA = {ip = "string"}
local NO_EXTRA = {}

-- Checks an options table; returns it (or an empty one).
local function checkopts(fname, i, opts, extra)
  if opts == nil then return NO_EXTRA end
  if type(opts) ~= "table" then
    error(format("bad argument #%d to '%s' (options table expected, got %s)", i, fname,
                 typename(opts)), 3)
  end
  for k, v in pairs(opts) do
    local check, want = OPTS[k], extra[k]
    if check == nil and want == nil then
      error(format("bad argument #%d to '%s' (unknown option '%s')", i, fname, tostring(k)), 3)
    end
    local good
    if want == "string" then good = type(v) == "string"
    elseif want == "integer" then good = is_pos(v)
    else good = check(v) end
    if not good then
      error(format("bad argument #%d to '%s' (bad value for option '%s': %s)", i, fname, k,
                   tostring(v)), 3)
    end
  end
  return opts
end

-- Applies the socket options of opts, active last (so framing is set before data flows).
local function apply(s, opts)
  for k, v in pairs(opts) do
    if OPTS[k] and k ~= "active" then
      local ok, err = core.setopt(s, k, v)
      if not ok then return nil, err end
    end
  end
  if opts.active ~= nil then return core.setopt(s, "active", opts.active) end
  return true
end

-- ================================================================ waiting

--- Waits until the I/O thread says s is ready for dir ("r" or "w"), or the deadline.
-- The readiness message {ref} is always consumed: if the wait ends otherwise and the I/O
-- thread has already sent it, it is taken out of the mailbox here.
local function wait(s, dir, deadline)
  local ref = make_ref()
  local ok, err = core.wait(s, dir, ref)
  if not ok then return nil, err end
  local t
  if deadline then
    t = deadline - monotonic()
    if t < 0 then t = 0 end
  end
  local pat = {ref}
  local got, m = pcall(receive, pat, t)
  if got and m then return true end
  if not core.unwait(s, ref) then pcall(receive, pat, 0) end
  if not got then error(m, 0) end   -- killed or interrupted: go on unwinding
  return nil, "timeout"
end

local function numeric(host)
  return host:match("^%d+%.%d+%.%d+%.%d+$") or host:find(":", 1, true)
end

-- The address of host: itself if numeric, else looked up on a resolver thread.
local function resolve(host, deadline)
  if numeric(host) then return host end
  if host == "localhost" then return "127.0.0.1" end
  local ref = alias()
  local ok, err = core.resolve(host, ref)
  if not ok then
    unalias(ref)
    return nil, err
  end
  local t
  if deadline then
    t = deadline - monotonic()
    if t < 0 then t = 0 end
  end
  local got, m = pcall(receive, {ref}, t)
  unalias(ref)   -- a late answer is dropped
  if not got then error(m, 0) end
  if not m then return nil, "timeout" end
  if m[2] then return m[2] end
  return nil, m[3]
end

-- ================================================================ TCP

--- Listens on port (0: any free port) -> lsock | nil, err.
function M.listen(port, opts)
  checkport("net.listen", 1, port, true)
  opts = checkopts("net.listen", 2, opts, LISTEN_EXTRA)
  local ip, err = resolve(opts.ip or "127.0.0.1")
  if not ip then return nil, err end
  local ls
  ls, err = core.listen(ip, port, opts.backlog or 128, opts.reuseaddr ~= false)
  if not ls then return nil, err end
  local ok
  ok, err = apply(ls, opts)
  if not ok then
    core.close(ls)
    return nil, err
  end
  return ls
end

--- Accepts a connection -> sock (owned by the caller) | nil, err.
function M.accept(ls, timeout)
  checksock("net.accept", 1, ls)
  local deadline = deadline_of("net.accept", 2, timeout)
  while true do
    local s, err = core.accept(ls)
    if s then return s end
    if err ~= "wouldblock" then return nil, err end
    local ok, werr = wait(ls, "r", deadline)
    if not ok then return nil, werr end
  end
end

--- Connects to host:port -> sock | nil, err.
function M.connect(host, port, opts, timeout)
  if type(host) ~= "string" then argerr("net.connect", 1, "host expected, got " .. typename(host)) end
  checkport("net.connect", 2, port, false)
  opts = checkopts("net.connect", 3, opts, NO_EXTRA)
  local deadline = deadline_of("net.connect", 4, timeout)
  local ip, err = resolve(host, deadline)
  if not ip then return nil, err end
  local s, inprogress = core.connect(ip, port)
  if not s then return nil, inprogress end
  local ok
  for k, v in pairs(opts) do
    if k ~= "active" then core.setopt(s, k, v) end
  end
  if inprogress then
    ok, err = wait(s, "w", deadline)
    if ok then ok, err = core.connect_result(s) end
    if not ok then
      core.close(s)
      return nil, err
    end
  end
  if opts.active ~= nil then core.setopt(s, "active", opts.active) end
  return s
end

--- Receives (passive mode) -> data | nil, err. length 0/nil: what is there (at least a
-- byte); n > 0: exactly n bytes (packet "raw"); with framing: one packet.
function M.recv(s, length, timeout)
  checksock("net.recv", 1, s)
  if length == nil then
    length = 0
  elseif math_type(length) ~= "integer" or length < 0 then
    argerr("net.recv", 2, "length (integer >= 0) expected, got " .. tostring(length))
  end
  local deadline = deadline_of("net.recv", 3, timeout)
  local yielded = false
  while true do
    local data, err = core.recv(s, length)
    if data then return data end
    if err ~= "wouldblock" then return nil, err end
    if yielded then
      local ok, werr = wait(s, "r", deadline)
      if not ok then return nil, werr end
    else
      -- One more try after the others have had a turn: the peer is often a process of
      -- this runtime about to answer, and that saves two thread wake-ups.
      yielded = true
      yield()
    end
  end
end

--- Sends all of data (a string, or an array of strings) -> true | nil, err.
function M.send(s, data, timeout)
  checksock("net.send", 1, s)
  if type(data) == "table" then
    local ok, joined = pcall(concat, data)
    if not ok then argerr("net.send", 2, "string or array of strings expected") end
    data = joined
  elseif type(data) ~= "string" then
    argerr("net.send", 2, "string expected, got " .. typename(data))
  end
  local deadline = deadline_of("net.send", 3, timeout)
  local pos = 0
  while true do
    local p, done = core.write(s, data, pos)
    if not p then return nil, done end
    if done then return true end
    pos = p
    local ok, werr = wait(s, "w", deadline)
    if not ok then return nil, werr end
  end
end

--- Closes the socket (the owner only) -> true | nil, "not_owner". Closing twice is fine.
function M.close(s)
  checksock("net.close", 1, s)
  return core.close(s)
end

local HOWS = {read = true, write = true, read_write = true}

--- Shuts down one or both directions -> true | nil, err.
function M.shutdown(s, how)
  checksock("net.shutdown", 1, s)
  if not HOWS[how] then
    argerr("net.shutdown", 2, "\"read\", \"write\" or \"read_write\" expected, got " .. tostring(how))
  end
  return core.shutdown(s, how)
end

--- ip, port of the other end | nil, err.
function M.peername(s)
  checksock("net.peername", 1, s)
  return core.peername(s)
end

--- ip, port of this end | nil, err.
function M.sockname(s)
  checksock("net.sockname", 1, s)
  return core.sockname(s)
end

--- Sets options (the owner only) -> true | nil, err.
function M.setopts(s, opts)
  checksock("net.setopts", 1, s)
  if opts == nil then argerr("net.setopts", 2, "options table expected, got nil") end
  checkopts("net.setopts", 2, opts, NO_EXTRA)
  return apply(s, opts)
end

--- The values of the named options -> table | nil, err.
function M.getopts(s, names)
  checksock("net.getopts", 1, s)
  if type(names) ~= "table" then
    argerr("net.getopts", 2, "array of option names expected, got " .. typename(names))
  end
  local t = {}
  for _, k in ipairs(names) do
    if OPTS[k] == nil then argerr("net.getopts", 2, "unknown option '" .. tostring(k) .. "'") end
    local v, err = core.getopt(s, k)
    if v == nil then return nil, err end
    t[k] = v
  end
  return t
end

--- Makes pid the owner (the owner only) -> true | nil, err. Active messages of this socket
-- still in the caller's mailbox are passed on to pid first, in order.
function M.controlling_process(s, pid)
  checksock("net.controlling_process", 1, s)
  if not is_pid(pid) then
    argerr("net.controlling_process", 2, "pid expected, got " .. typename(pid))
  end
  if pid == self() then return core.controlling_process(s, pid) end
  local act, err = core.getopt(s, "active")
  if act == nil then return nil, err end
  local ok
  ok, err = core.setopt(s, "active", false)
  if not ok then return nil, err end
  local pats = any_of({"tcp", s}, {"tcp_closed", s}, {"tcp_error", s}, {"tcp_passive", s},
                      {"udp", s}, {"udp_passive", s})
  while true do
    local m = receive(pats, 0)
    if m == nil then break end
    send(pid, m)
  end
  if act == 0 then act = false end
  ok, err = core.controlling_process(s, pid, act)
  if not ok then
    if act then core.setopt(s, "active", act) end
    return nil, err
  end
  return true
end

--- Is v a socket?
function M.is_socket(v)
  return getmetatable(v) == SOCK
end

--- The caller's open sockets.
function M.sockets()
  return core.sockets()
end

-- ================================================================ UDP

--- Opens a UDP socket on port (0: any) -> sock | nil, err.
function M.udp_open(port, opts)
  checkport("net.udp_open", 1, port, true)
  opts = checkopts("net.udp_open", 2, opts, UDP_EXTRA)
  local ip, err = resolve(opts.ip or "127.0.0.1")
  if not ip then return nil, err end
  local s
  s, err = core.udp_open(ip, port, opts.reuseaddr == true)
  if not s then return nil, err end
  local ok
  ok, err = apply(s, opts)
  if not ok then
    core.close(s)
    return nil, err
  end
  return s
end

--- Sends one datagram -> true | nil, err (timeout: only if the send buffer stays full).
function M.sendto(s, host, port, data, timeout)
  checksock("net.sendto", 1, s)
  if type(host) ~= "string" then argerr("net.sendto", 2, "host expected, got " .. typename(host)) end
  checkport("net.sendto", 3, port, false)
  if type(data) ~= "string" then argerr("net.sendto", 4, "string expected, got " .. typename(data)) end
  local deadline = deadline_of("net.sendto", 5, timeout)
  local ip, err = resolve(host, deadline)
  if not ip then return nil, err end
  while true do
    local ok
    ok, err = core.sendto(s, ip, port, data)
    if ok then return true end
    if err ~= "wouldblock" then return nil, err end
    ok, err = wait(s, "w", deadline)
    if not ok then return nil, err end
  end
end

--- Receives one datagram (passive mode) -> data, ip, port | nil, err.
function M.recvfrom(s, timeout)
  checksock("net.recvfrom", 1, s)
  local deadline = deadline_of("net.recvfrom", 2, timeout)
  local yielded = false
  while true do
    local data, ip, port = core.recvfrom(s)
    if data then return data, ip, port end
    if ip ~= "wouldblock" then return nil, ip end
    if yielded then
      local ok, werr = wait(s, "r", deadline)
      if not ok then return nil, werr end
    else
      yielded = true   -- as in recv
      yield()
    end
  end
end

SOCK.__index = M

return M
