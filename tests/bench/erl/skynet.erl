%% bench: skynet, a 10-ary tree of processes summing L leaf numbers; see skynet.lua.
%% 1,111,111 processes need a process limit above the default 262,144 (+P).
%% erl -noshell +S 2 +P 2000000 -pa build/bench/erl -run skynet main [L]
-module(skynet).
-export([main/0, main/1]).

main() -> main([]).
main(Args) -> bench_util:run(fun() -> run(Args) end).

run(Args) ->
    L = bench_util:size(Args, 1, 1000000),
    Procs = procs(L, L),
    Me = self(),
    T0 = bench_util:now_ms(),
    spawn(fun() -> node(Me, 0, L) end),
    Sum = receive S -> S end,
    T1 = bench_util:now_ms(),
    bench_util:check(Sum =:= L * (L - 1) div 2, {sum, Sum}),
    bench_util:report("skynet", [{"leaves", L}, {"n", Procs}], T1 - T0, Procs, [{"sum", Sum}]),
    bench_util:peak("skynet").

procs(L, 1) -> L;
procs(L, Level) when Level rem 10 =:= 0 -> L div Level + procs(L, Level div 10);
procs(_, _) -> error(leaves_not_a_power_of_10).

node(Parent, Num, 1) ->
    Parent ! Num;
node(Parent, Num, Size) ->
    Sub = Size div 10,
    children(self(), Num, Sub, 0),
    Parent ! collect(10, 0).

children(_, _, _, 10) -> ok;
children(Me, Num, Sub, I) ->
    spawn(fun() -> node(Me, Num + I * Sub, Sub) end),
    children(Me, Num, Sub, I + 1).

collect(0, Sum) -> Sum;
collect(I, Sum) -> receive X -> collect(I - 1, Sum + X) end.
