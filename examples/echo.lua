-- examples/echo.lua [port] — a line echo server on 127.0.0.1 (port 7000 by default).
--
--     ./moonbeam examples/echo.lua 7000       then, in another terminal:
--     nc 127.0.0.1 7000                        every line you type comes back
--
-- The tree: "echo" (tcp_server: a supervisor) with its acceptor and one process per
-- connection. The sockets frame lines themselves (packet = "line"), so a connection's
-- process receives whole lines, newline included, and sends each back as it is.
local tcp_server = require "tcp_server"
local net = require "net"

local port = tonumber(arg and arg[1]) or 7000

--- One connection: runs in its own process, which owns the socket.
local function echo(sock)
  while true do
    local line = net.recv(sock)
    if not line or not net.send(sock, line) then return end
  end
end

local sup, where = tcp_server.start_link({port = port, packet = "line", handler = echo,
                                          name = "echo"})
if not sup then
  io.stderr:write("echo: cannot listen on 127.0.0.1:", port, ": ", tostring(where), "\n")
  os.exit(1)
end
print("echo: listening on 127.0.0.1:" .. where)
io.stdout:flush()
process.receive()           -- the tree lives as long as this (the first) process
