-- examples/chat.lua [port] — a line-based chat server on 127.0.0.1 (port 7001 by default).
--
--     ./moonbeam examples/chat.lua 7001      then, in two or more terminals:
--     nc 127.0.0.1 7001
--     /nick ada                              choose your name (default: guest<N>)
--     /join lobby                            enter a room (leaving the one you were in)
--     hello                                  said to everyone else in your room
--     /who                                   who is in the room
--     /quit                                  (or just close the connection)
--
-- Lines to the others in a room read "ada: hello"; the server's own notices start with
-- "* ". The tree ("chat", one_for_one):
--
--     chat
--     ├── rooms        dynamic_supervisor: one gen_server per room, registered as
--     │                "chat_room:<name>", started when someone first joins it
--     └── server       tcp_server: acceptor + one process per member connection
--
-- A room monitors its members: when a member's connection closes its process ends, and
-- the room drops it and tells the others. A member monitors its room: if the room dies,
-- the member is told and may join again (a fresh room is started).
local supervisor = require "supervisor"
local dynamic_supervisor = require "dynamic_supervisor"
local gen_server = require "gen_server"
local tcp_server = require "tcp_server"
local net = require "net"

local port = tonumber(arg and arg[1]) or 7001
local ANY = process.ANY

-- ===================================================================== a room

--- The room's callbacks (a table module: it travels to each room's process).
local Room = {}

local function broadcast(s, text, except)
  for pid in pairs(s.members) do
    if pid ~= except then process.send(pid, {"chat_line", text}) end
  end
end

function Room.init(name) return "ok", {name = name, members = {}, refs = {}} end

function Room.handle_call(req, _, s)
  local op, pid = req[1], req[2]
  if op == "join" then
    if not s.members[pid] then s.refs[pid] = process.monitor(pid) end
    s.members[pid] = req[3]
    broadcast(s, "* " .. req[3] .. " joined #" .. s.name, pid)
  elseif op == "nick" and s.members[pid] then
    broadcast(s, "* " .. s.members[pid] .. " is now " .. req[3], pid)
    s.members[pid] = req[3]
  end
  local names = {}
  for _, nick in pairs(s.members) do names[#names + 1] = nick end
  table.sort(names)
  return "reply", names, s
end

local function leave(s, pid, why)
  local nick = s.members[pid]
  if not nick then return s end
  s.members[pid] = nil
  process.demonitor(s.refs[pid], {flush = true})
  s.refs[pid] = nil
  broadcast(s, "* " .. nick .. " " .. why .. " #" .. s.name)
  return s
end

function Room.handle_cast(msg, s)
  if msg[1] == "say" and s.members[msg[2]] then
    broadcast(s, s.members[msg[2]] .. ": " .. msg[3], msg[2])
  elseif msg[1] == "leave" then
    s = leave(s, msg[2], "left")
  end
  return "noreply", s
end

function Room.handle_info(msg, s)
  if msg[1] == "DOWN" then s = leave(s, msg[4], "left") end
  return "noreply", s
end

function Room.start_link(name)
  return gen_server.start_link(Room, name, {name = "chat_room:" .. name})
end

--- The room's pid, started under "chat_rooms" if nobody is in it yet.
local function find_room(name)
  local pid = process.whereis("chat_room:" .. name)
  if pid then return pid end
  local new, err = dynamic_supervisor.start_child("chat_rooms",
    {start = {Room.start_link, name}, restart = "temporary"})
  if new then return new end
  if type(err) == "table" and err[1] == "already_started" then return err[2] end
  return nil, err
end

-- ===================================================================== a member

local HELP = "* commands: /nick name, /join room, /who, /quit; other lines go to your room\n"

--- One member connection: runs in its own process, which owns the socket.
local function member(sock)
  local nick = "guest" .. tostring(process.self()):match("^<%d+%.(%d+)")
  local room, room_name, room_ref
  local function say(text) return net.send(sock, text .. "\n") end
  local function part()
    if room then
      process.demonitor(room_ref, {flush = true})
      gen_server.cast(room, {"leave", process.self()})
      room, room_name, room_ref = nil, nil, nil
    end
  end
  local commands = {}
  function commands.nick(arg)
    if not arg:match("^[%w_%-]+$") then return say("* a nick is letters, digits, _ and -") end
    if room then gen_server.call(room, {"nick", process.self(), arg}) end
    nick = arg
    say("* you are " .. nick)
  end
  function commands.join(arg)
    if not arg:match("^[%w_%-]+$") then return say("* a room name is letters, digits, _ and -") end
    part()
    local pid, err = find_room(arg)
    if not pid then return say("* cannot open #" .. arg .. ": " .. tostring(err)) end
    room, room_name, room_ref = pid, arg, process.monitor(pid)
    local names = gen_server.call(room, {"join", process.self(), nick})
    say("* you joined #" .. arg .. " (" .. table.concat(names, ", ") .. ")")
  end
  function commands.who()
    if not room then return say("* you are in no room") end
    say("* in #" .. room_name .. ": " ..
        table.concat(gen_server.call(room, {"who", process.self()}), ", "))
  end

  say("* welcome, " .. nick)
  net.send(sock, HELP)
  net.setopts(sock, {active = "once"})
  while true do
    local msg = process.receive()
    if msg[1] == "tcp" then
      local line = msg[3]:gsub("\r?\n$", "")
      local cmd, arg = line:match("^/(%a+)%s*(.-)%s*$")
      if cmd == "quit" then break end
      if cmd and commands[cmd] then
        commands[cmd](arg)
      elseif cmd then
        net.send(sock, HELP)
      elseif line ~= "" then
        if room then gen_server.cast(room, {"say", process.self(), line})
        else say("* join a room first: /join name") end
      end
      net.setopts(sock, {active = "once"})
    elseif msg[1] == "chat_line" then
      say(msg[2])
    elseif msg[1] == "DOWN" and msg[2] == room_ref then
      say("* #" .. room_name .. " is gone; /join it again")
      room, room_name, room_ref = nil, nil, nil
    elseif msg[1] == "tcp_closed" or msg[1] == "tcp_error" then
      break
    end
  end
  part()
end

-- ===================================================================== the tree

process.flag("trap_exit", true)   -- a tree that fails to start must not take us down unheard
local sup, err = supervisor.start_link({
  dynamic_supervisor.child_spec({name = "chat_rooms"}),
  tcp_server.child_spec({port = port, packet = "line", handler = member, name = "server"}),
}, {strategy = "one_for_one", name = "chat"})
if not sup then
  io.stderr:write("chat: cannot start: ", require("pretty").format(err), "\n")
  os.exit(1)
end
print("chat: listening on 127.0.0.1:" .. port)
io.stdout:flush()
local msg = process.receive({"EXIT", sup, ANY})
io.stderr:write("chat: the tree stopped: ", require("pretty").format(msg[3]), "\n")
os.exit(1)
