-- service.lua — the Lua side of examples/embed: a supervised checksum server.
--
-- host.c spawns this file as its main process. It starts the tree
--
--     checksum_sup (one_for_one)
--     └── checksum      gen_server: answers checksum requests with host.checksum
--
-- tells the host it is up, and sleeps: this process is the supervisor's linked parent, so
-- it stays; the tree lives until the host calls mb_stop, which shuts it down from the top
-- (the supervisor stops the server, whose terminate reports to the host).
local gen_server = require "gen_server"
local supervisor = require "supervisor"
local host = require "host"   -- the host's own C library, given with mb_preload

--- The server's callbacks; its state is the number of requests it has answered.
local Checksum = {}

function Checksum.start_link()
  return gen_server.start_link(Checksum, nil, {name = "checksum"})
end

function Checksum.init()
  process.flag("trap_exit", true)   -- so that terminate runs when the supervisor stops it
  return "ok", 0
end

--- A request is a plain message {"checksum", reply_to, id, text} (the host sends it with
-- mb_send); reply_to gets {"checksum", id, sum}.
function Checksum.handle_info(msg, served)
  local _, reply_to, id, text = table.unpack(msg)
  process.send(reply_to, {"checksum", id, host.checksum(text)})
  return "noreply", served + 1
end

function Checksum.terminate(reason, served)
  host.report(string.format("checksum server: terminate(%q) after %d requests",
                            tostring(reason), served))
end

assert(supervisor.start_link({{id = "checksum", start = {Checksum.start_link}}},
                             {strategy = "one_for_one", name = "checksum_sup"}))
process.send("host", "ready")
process.sleep("infinity")   -- the supervisor's parent stays until mb_stop
