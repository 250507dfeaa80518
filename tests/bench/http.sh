#!/usr/bin/env bash
# tests/bench/http.sh — HTTP requests/s of Moonbeam's http module under wrk, beside Erlang's
# inets httpd serving the same 6-byte response, and the echo example's round trips/s.
# Loopback only. Needs wrk and erl with inets (Debian: wrk erlang-inets); a missing one is
# skipped. make bench runs it last (BENCH=http alone); by hand, after make:
# bash tests/bench/http.sh
# Variables: DURATION (5, seconds per run), CONNS (50), THREADS (2).
set -u
cd "$(dirname "$0")/../.."
MB=./moonbeam
D=${DURATION:-5}
C=${CONNS:-50}
T=${THREADS:-2}
tmp=$(mktemp -d)
pids=""
trap 'for p in $pids; do kill $p 2>/dev/null; done; rm -rf "$tmp"' EXIT INT TERM

port() { $MB -e 'local net = require "net" local s = assert(net.listen(0)) print(select(2, net.sockname(s))) net.close(s)'; }
wait_port() { i=0; while ! (exec 3<>/dev/tcp/127.0.0.1/$1) 2>/dev/null; do i=$((i+1)); [ $i -gt 100 ] && return 1; sleep 0.1; done; }
bg() { "$@" >"$tmp/log.$$" 2>&1 & pids="$pids $!"; }
rps() { wrk -t"$T" -c"$C" -d"${D}s" "$1" | awk '/^Requests\/sec/ {print $2} /Non-2xx|Socket errors/ {print "  (" $0 ")" > "/dev/stderr"}'; }

if command -v wrk >/dev/null; then
  p=$(port); bg $MB tests/bench/http_hello.lua "$p"; wait_port "$p"
  echo "moonbeam http, fixed 6-byte response:     $(rps http://127.0.0.1:$p/) requests/s"
  p=$(port); bg $MB examples/http_kv.lua "$p"; wait_port "$p"
  curl -s -X PUT --data-binary 'hello' "http://127.0.0.1:$p/kv/k" >/dev/null 2>&1 ||
    printf 'PUT /kv/k HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\nConnection: close\r\n\r\nhello\n' |
    (exec 3<>/dev/tcp/127.0.0.1/$p; cat >&3; cat <&3 >/dev/null)
  echo "moonbeam examples/http_kv.lua GET /kv/k:   $(rps http://127.0.0.1:$p/kv/k) requests/s"
  if command -v erl >/dev/null && command -v erlc >/dev/null; then
    # A one-function httpd module answering every request with the same 6 bytes, and
    # nodelay on the sockets: inets writes the header and the body separately, and with
    # Nagle's algorithm each response would wait ~40 ms for the client's delayed ACK.
    cat >"$tmp/bench_hello.erl" <<'ERL'
-module(bench_hello).
-export([do/1]).
do(_ModData) ->
    {proceed, [{response, {response, [{code, 200}, {content_type, "text/plain"},
                                      {content_length, "6"}], "hello\n"}}]}.
ERL
    (cd "$tmp" && erlc bench_hello.erl)
    p=$(port)
    bg erl -noshell -pa "$tmp" -kernel inet_default_listen_options '[{nodelay,true}]' \
      -eval "inets:start(), {ok, _} = inets:start(httpd, [{port, $p},
      {server_name, \"bench\"}, {server_root, \"$tmp\"}, {document_root, \"$tmp\"},
      {bind_address, {127,0,0,1}}, {modules, [bench_hello]}, {keep_alive, true},
      {max_clients, 1000}])."
    wait_port "$p"
    echo "erlang inets httpd, same 6-byte response: $(rps http://127.0.0.1:$p/) requests/s"
  else
    echo "erl not found: inets skipped"
  fi
else
  echo "wrk not found: HTTP benchmarks skipped"
fi

p=$(port); bg $MB examples/echo.lua "$p"; wait_port "$p"
$MB tests/bench/echo_rtt.lua "$p" "$C" "$D" 2>&1
