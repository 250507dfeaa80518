%% bench: N processes in a ring pass an integer token M rounds (N*M hops); see ring.lua.
%% erl -noshell +S 2 -pa build/bench/erl -run ring main [N] [M]
-module(ring).
-export([main/0, main/1]).

main() -> main([]).
main(Args) -> bench_util:run(fun() -> run(Args) end).

run(Args) ->
    N = bench_util:size(Args, 1, 1000),
    M = bench_util:size(Args, 2, 1000),
    Me = self(),
    Ring = list_to_tuple([spawn(fun() -> member(Me, I) end) || I <- lists:seq(1, N)]),
    [element(I, Ring) ! element(I rem N + 1, Ring) || I <- lists:seq(1, N)],
    T0 = bench_util:now_ms(),
    element(1, Ring) ! N * M,
    Last = receive L -> L end,
    T1 = bench_util:now_ms(),
    bench_util:check(Last =:= 1, {token_ended_at, Last}),
    bench_util:report("ring", [{"n", N}, {"m", M}], T1 - T0, N * M, []),
    bench_util:peak("ring").

member(Main, Index) ->
    receive Next when is_pid(Next) -> loop(Main, Index, Next) end.

loop(Main, Index, Next) ->
    receive
        0 -> Main ! Index;
        T -> Next ! T - 1
    end,
    loop(Main, Index, Next).
