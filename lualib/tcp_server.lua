--- tcp_server — a TCP listener as a supervision tree: one acceptor, one process per connection.
--
--     local tcp_server, net = require "tcp_server", require "net"
--     local sup, port = tcp_server.start_link({port = 7000, packet = "line",
--       handler = function(sock)                 -- runs in the connection's own process
--         for line in function() return net.recv(sock) end do net.send(sock, line) end
--       end})
--
-- The tree (the supervisor is what start_link returns):
--
--     supervisor (rest_for_one)
--     ├── "connections"   dynamic_supervisor: one temporary child per connection
--     └── "acceptor:PORT" the process that owns the listening socket and accepts
--
-- The acceptor accepts a connection, starts its process under "connections", makes that
-- process the socket's owner and hands it the socket; the process then calls
-- `handler(sock, args...)` and closes the socket when the handler returns. A handler that
-- raises ends only its own process (with a crash report); connections are temporary
-- children, so a crash neither restarts them nor counts against the restart intensity.
-- If the acceptor dies it is restarted and listens again on the same port; if the
-- connections supervisor dies, the acceptor is restarted after it (rest_for_one).
--
-- * `start_link(opts)` → sup, port | nil, reason (e.g. "eaddrinuse"). opts:
--   - `handler` (required): a function (copied into every connection process) or "mod.fn";
--   - `args`: an array of values passed to the handler after the socket;
--   - `port` (0: a free port, chosen once at start and kept across restarts), `ip`
--     ("127.0.0.1"), `backlog` (1024, as ranch: with net's 128 a burst of connections
--     overflows the accept queue, and Linux then leaves clients that believe they are
--     connected waiting for SYN-ACK retransmissions, seconds apart);
--   - socket options given to accepted sockets: `packet`, `active`, `nodelay`, `keepalive`,
--     `recbuf`, `sndbuf`, `packet_size` (as net.listen takes them);
--   - `max_connections` ("infinity"): past it new connections are closed at once;
--   - `name`: a name to register the supervisor under.
-- * `child_spec(opts)` → a spec (type "supervisor") to put the server in another tree.
-- * `port(sup)` → the port it listens on.
-- * `connections(sup)` → the pids of the connection processes.
-- @module tcp_server

local process = require "process"
local net = require "net"
local supervisor = require "supervisor"
local dynamic_supervisor = require "dynamic_supervisor"

local type, error, tonumber, ipairs, pcall = type, error, tonumber, ipairs, pcall
local table_unpack = table.unpack
local ANY = process.ANY

local M = {}

local SOCKET_OPTS = {"packet", "active", "nodelay", "keepalive", "recbuf", "sndbuf",
                     "packet_size", "backlog", "ip"}

--- The acceptor's configuration from the user's options (checked here, in the caller).
local function config(opts, fname)
  if type(opts) ~= "table" then
    error("bad argument #1 to '" .. fname .. "' (table expected, got " .. type(opts) .. ")", 3)
  end
  local h = opts.handler
  if type(h) ~= "function" and (type(h) ~= "string" or not h:find("^[%w_.]+%.[%w_]+$")) then
    error("bad argument #1 to '" .. fname .. "' (handler must be a function or \"mod.fn\")", 3)
  end
  local listen = {backlog = 1024}
  for _, k in ipairs(SOCKET_OPTS) do
    if opts[k] ~= nil then listen[k] = opts[k] end
  end
  return {handler = h, args = opts.args or {}, port = opts.port or 0, listen = listen,
          max_connections = opts.max_connections or "infinity"}
end

--- The port to listen on, after a trial listen: port 0 is resolved once, so that a
-- restarted acceptor listens where the first one did, and a port that cannot be had gives
-- nil, reason here (a supervisor failing in its init would take its linked caller down).
local function resolve_port(cfg)
  local l, err = net.listen(cfg.port, {ip = cfg.listen.ip})
  if not l then return nil, err end
  local _, port = net.sockname(l)
  net.close(l)
  return port
end

local function specs(cfg)
  return {
    {id = "connections", type = "supervisor",
     start = {"dynamic_supervisor", "start_link",
              {max_children = cfg.max_connections, extra_arguments = {cfg}}}},
    {id = "acceptor:" .. cfg.port, start = {"tcp_server", "_start_acceptor", cfg},
     shutdown = "brutal_kill"},
  }
end

function M.start_link(opts)
  local cfg = config(opts, "start_link")
  local port, err = resolve_port(cfg)
  if not port then return nil, err end
  cfg.port = port
  local sup, why = supervisor.start_link(specs(cfg), {strategy = "rest_for_one",
                                                      name = opts.name})
  if not sup then
    if type(why) == "table" and why[1] == "shutdown" and type(why[2]) == "table"
       and why[2][1] == "failed_to_start_child" then
      why = why[2][3]           -- the acceptor's own reason, e.g. "eaddrinuse"
    end
    return nil, why
  end
  return sup, port
end

function M.child_spec(opts)
  config(opts, "child_spec")
  return {id = opts.name or "tcp_server", type = "supervisor",
          start = {"tcp_server", "start_link", opts}}
end

function M.port(sup)
  for _, c in ipairs(supervisor.which_children(sup)) do
    local p = type(c[1]) == "string" and c[1]:match("^acceptor:(%d+)$")
    if p then return tonumber(p) end
  end
end

local function connections_sup(sup)
  for _, c in ipairs(supervisor.which_children(sup)) do
    if c[1] == "connections" then return c[2] end
  end
end

function M.connections(sup)
  local pids = {}
  for _, c in ipairs(dynamic_supervisor.which_children(connections_sup(sup))) do
    if process.is_pid(c[2]) then pids[#pids + 1] = c[2] end
  end
  return pids
end

-- ===================================================================== the acceptor

--- Start function of the acceptor (runs in the supervisor): spawns it and returns its pid
-- once it listens, or nil and the reason listening failed.
function M._start_acceptor(cfg)
  local sup, ref = process.self(), process.make_ref()
  local pid = process.spawn_link("tcp_server._acceptor", cfg, sup, ref)
  local msg = process.receive(process.any_of({ref, ANY, ANY}, {"EXIT", pid, ANY}), 10000)
  if msg == nil then
    process.exit(pid, "kill")
    return nil, "timeout"
  end
  if msg[1] == "EXIT" then return nil, msg[3] end
  if msg[2] ~= "ok" then return nil, msg[3] end
  return pid
end

--- Hands an accepted socket to a new connection process; closes it if none can start.
local function hand_over(conns, sock)
  local ok, pid = pcall(dynamic_supervisor.start_child, conns,
                        {start = {"tcp_server", "_start_connection"},
                         restart = "temporary"})
  if not ok or not process.is_pid(pid) then
    net.close(sock)
    return
  end
  if net.controlling_process(sock, pid) then
    process.send(pid, {"tcp_server_socket", sock})
  else
    net.close(sock)
    process.exit(pid, "kill")
  end
end

function M._acceptor(cfg, sup, ref)
  local lsock, err = net.listen(cfg.port, cfg.listen)
  if not lsock then
    process.unlink(sup)
    process.send(sup, {ref, "error", err})
    return
  end
  process.send(sup, {ref, "ok"})
  local conns = connections_sup(sup)
  while true do
    local sock, why = net.accept(lsock)
    if sock then
      hand_over(conns, sock)
    elseif why == "closed" or why == "einval" then
      error(why, 0)
    else
      process.sleep(10)     -- out of file descriptors or the like: let some close
    end
  end
end

-- ===================================================================== connections

--- Start function of a connection (runs in the connections supervisor).
function M._start_connection(cfg)
  return process.spawn_link("tcp_server._connection", cfg)
end

function M._connection(cfg)
  local msg = process.receive({"tcp_server_socket", ANY}, 10000)
  if not msg then return end
  local sock = msg[2]
  local h = cfg.handler
  if type(h) == "string" then
    local mod, fn = h:match("^(.*)%.([^.]+)$")
    h = require(mod)[fn]
  end
  h(sock, table_unpack(cfg.args))
  net.close(sock)
end

return M
