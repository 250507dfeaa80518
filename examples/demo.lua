-- demo.lua — what `make run` shows: a small service built from bare processes.
--
-- A registered counter service answers requests from several clients; a worker that
-- crashes now and then is watched by a keeper that restarts it (a hand-made supervisor:
-- the behaviours issue brings the real one); a busy loop runs alongside and does not
-- stop anybody, because processes are preempted. Runs for a fraction of a second.

local P = process
local start = P.monotonic()

local function log(fmt, ...)
  print(string.format("[%6.1f ms] " .. fmt, P.monotonic() - start, ...))
end

-- The counter: state lives in the loop's argument, requests are {from, ref, op}.
local function counter(n)
  while true do
    local req = P.receive()
    if req.op == "add" then
      n = n + req.by
    end
    P.send(req.from, {req.ref, n})
  end
end

local function call(server, op, by)
  local ref = P.make_ref()
  P.send(server, {from = P.self(), ref = ref, op = op, by = by})
  local reply = P.receive({ref, P.ANY}, 1000)
  return reply and reply[2]
end

-- A worker that fails on every third job.
local function worker(id)
  local jobs = 0
  while true do
    local job = P.receive()
    jobs = jobs + 1
    if jobs % 3 == 0 then error(string.format("worker %d choked on job %q", id, job), 0) end
    call("counter", "add", 1)
  end
end

-- The keeper traps exits and restarts the worker whenever it dies abnormally.
local function keeper(parent)
  P.flag("trap_exit", true)
  local generation = 1
  local w = P.spawn_link(worker, generation)
  P.register("worker", w)
  P.send(parent, "ready")
  while true do
    local msg = P.receive()
    if msg[1] == "EXIT" and msg[2] == w then
      generation = generation + 1
      P.send(parent, {"restart", generation, msg[3]})
      w = P.spawn_link(worker, generation)
      P.register("worker", w)
    end
  end
end

local me = P.self()
P.spawn_opt({name = "counter"}, counter, 0)
log("counter service started as %s", tostring(P.whereis("counter")))

local spinner = P.spawn(function() local x = 0 while true do x = x + 1 end end)
log("a busy loop %s is running too; it will not starve anyone", tostring(spinner))

P.spawn(keeper, me)
P.receive(function(m) return m == "ready" end, 1000)
log("worker %s started under a keeper", tostring(P.whereis("worker")))

for i = 1, 8 do
  local ok = pcall(P.send, "worker", "job-" .. i)
  if not ok then log("no worker registered right now; job-%d dropped", i) end
  local r = P.receive(function(m) return type(m) == "table" and m[1] == "restart" end, 50)
  if r then log("worker crashed (%s); keeper started worker #%d", tostring(r[3]), r[2]) end
end

local clients = {}
for c = 1, 4 do
  local pid, ref = P.spawn_monitor(function()
    for _ = 1, 250 do call("counter", "add", 1) end
  end)
  clients[ref] = pid
end
for _ = 1, 4 do P.receive(function(m) return m[1] == "DOWN" and clients[m[2]] end, 5000) end
log("4 clients made 1000 calls; counter is now %d", call("counter", "get"))

local info = P.info(spinner)
log("the busy loop has run %d reductions meanwhile; killing it", info.reductions)
P.exit(spinner, "kill")
log("%d processes alive; done", #P.list())
