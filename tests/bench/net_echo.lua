-- bench: round trips of a 16-byte message over loopback TCP, an echo server in another
-- process; passive (recv/send) and active ({active = true} messages) on both ends.
-- usage: moonbeam tests/bench/net_echo.lua [N]
local P = process
local net = require "net"
local N = tonumber(arg and arg[1]) or 100000
local MSG = string.rep("x", 16)

local function run(active)
  local ls = assert(net.listen(0, {nodelay = true}))
  local _, port = net.sockname(ls)
  P.spawn(function()
    local s = assert(net.accept(ls))
    if active then
      net.setopts(s, {active = true})
      while true do
        local m = P.receive()
        if m[1] ~= "tcp" then return end
        net.send(s, m[3])
      end
    else
      while true do
        local d = net.recv(s, #MSG)
        if not d then return end
        net.send(s, d)
      end
    end
  end)
  local c = assert(net.connect("127.0.0.1", port, {nodelay = true, active = active}))
  local t0 = P.monotonic()
  for _ = 1, N do
    net.send(c, MSG)
    if active then
      local got = 0
      repeat got = got + #P.receive()[3] until got >= #MSG
    else
      net.recv(c, #MSG)
    end
  end
  local t1 = P.monotonic()
  net.close(c)
  net.close(ls)
  print(string.format("bench=net_echo mode=%s n=%d seconds=%.3f round_trips_per_s=%.0f per_op_us=%.2f",
    active and "active" or "passive", N, (t1 - t0) / 1000, N / ((t1 - t0) / 1000),
    (t1 - t0) * 1000 / N))
end

run(false)
run(true)
