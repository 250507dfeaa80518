%% bench: fairness, N ping-pong round trips timed one by one, idle and then while 2
%% processes spin in pure loops; p50 and p99 per round trip; see fairness.lua.
%% erl -noshell +S 2 -pa build/bench/erl -run fairness main [N]
-module(fairness).
-export([main/0, main/1]).

-define(SPINNERS, 2).

main() -> main([]).
main(Args) -> bench_util:run(fun() -> run(Args) end).

run(Args) ->
    N = bench_util:size(Args, 1, 10000),
    Echo = spawn(fun echo/0),
    round_trips(Echo, N, "idle", 0),
    Me = self(),
    Spinners = [spawn(fun() -> Me ! spinning, spin(0) end) || _ <- lists:seq(1, ?SPINNERS)],
    [receive spinning -> ok end || _ <- Spinners],
    round_trips(Echo, N, "loaded", ?SPINNERS),
    [exit(S, kill) || S <- Spinners],
    bench_util:peak("fairness").

round_trips(Echo, N, Mode, Spinners) ->
    T0 = bench_util:now_ms(),
    {Times, Sum} = timed(Echo, self(), 1, N, [], 0),
    T1 = bench_util:now_ms(),
    bench_util:check(Sum =:= N * (N + 1) div 2, {sum, Sum}),
    Sorted = list_to_tuple(lists:sort(Times)),
    Pct = fun(P) -> element(max(1, ceil(P * N)), Sorted) / 1000 end,
    bench_util:report("fairness", [{"mode", Mode}, {"n", N}], T1 - T0, N,
                      [{"spinners", Spinners},
                       {"p50_us", io_lib:format("~.2f", [Pct(0.50)])},
                       {"p99_us", io_lib:format("~.2f", [Pct(0.99)])}]).

%% Times in ns, one per round trip.
timed(_, _, I, N, Times, Sum) when I > N -> {Times, Sum};
timed(Echo, Me, I, N, Times, Sum) ->
    T = erlang:monotonic_time(nanosecond),
    Echo ! {Me, I},
    receive X ->
        timed(Echo, Me, I + 1, N, [erlang:monotonic_time(nanosecond) - T | Times], Sum + X)
    end.

echo() ->
    receive {From, I} -> From ! I end,
    echo().

spin(X) -> spin(X + 1).
