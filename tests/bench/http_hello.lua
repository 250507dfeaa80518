-- tests/bench/http_hello.lua [port] — the smallest HTTP service: every request gets
-- "hello\n". Used by tests/bench/http.sh beside Erlang's inets serving the same bytes.
local http = require "http"

local sup, port = http.start_link({port = tonumber(arg and arg[1]) or 8081,
                                   nodelay = true,
                                   handler = function() return 200, nil, "hello\n" end})
assert(sup, port)
print("http_hello: listening on 127.0.0.1:" .. port)
io.stdout:flush()
process.receive()
