-- bench: two processes, N round trips of an integer.
local P = process
local N = tonumber(arg and arg[1]) or 1000000
local pong = P.spawn(function()
  while true do
    local m = P.receive()
    P.send(m[1], m[2])
  end
end)
local me = P.self()
local t0 = P.monotonic()
for i = 1, N do
  P.send(pong, {me, i})
  P.receive()
end
local t1 = P.monotonic()
print(string.format("bench=pingpong n=%d seconds=%.3f per_op_us=%.3f", N, (t1 - t0) / 1000, (t1 - t0) * 1000 / N))
