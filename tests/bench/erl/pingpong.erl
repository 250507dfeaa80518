%% bench: two processes, N round trips of an integer ({Pid, I} there, I back); see pingpong.lua.
%% erl -noshell +S 2 -pa build/bench/erl -run pingpong main [N]
-module(pingpong).
-export([main/0, main/1]).

main() -> main([]).
main(Args) -> bench_util:run(fun() -> run(Args) end).

run(Args) ->
    N = bench_util:size(Args, 1, 1000000),
    Pong = spawn(fun pong/0),
    T0 = bench_util:now_ms(),
    Sum = ping(Pong, self(), 1, N, 0),
    T1 = bench_util:now_ms(),
    bench_util:check(Sum =:= N * (N + 1) div 2, {sum, Sum}),
    bench_util:report("pingpong", [{"n", N}], T1 - T0, N, []),
    bench_util:peak("pingpong").

ping(_, _, I, N, Sum) when I > N -> Sum;
ping(Pong, Me, I, N, Sum) ->
    Pong ! {Me, I},
    receive X -> ping(Pong, Me, I + 1, N, Sum + X) end.

pong() ->
    receive {From, I} -> From ! I end,
    pong().
