%% bench: big (Savina #7), N processes each sending M pings, one at a time, to neighbours
%% picked by an LCG and answering pings with pongs; see big.lua. per_op_us is per message.
%% erl -noshell +S 2 -pa build/bench/erl -run big main [N] [M]
-module(big).
-export([main/0, main/1]).

main() -> main([]).
main(Args) -> bench_util:run(fun() -> run(Args) end).

run(Args) ->
    N = bench_util:size(Args, 1, 1000),
    M = bench_util:size(Args, 2, 1000),
    Me = self(),
    List = [spawn(fun() -> member(Me, Id, N, M) end) || Id <- lists:seq(0, N - 1)],
    Peers = list_to_tuple(List),
    [P ! Peers || P <- List],
    T0 = bench_util:now_ms(),
    [P ! go || P <- List],
    [receive done -> ok end || _ <- List],
    T1 = bench_util:now_ms(),
    bench_util:report("big", [{"n", N}, {"m", M}], T1 - T0, 2 * N * M, [{"messages", 2 * N * M}]),
    bench_util:peak("big").

member(Main, Id, N, M) ->
    Peers = receive P when is_tuple(P) -> P end,
    receive go -> ok end,
    X = ping(Id, N, Peers, Id + 1),
    loop(Main, Id, N, M, Peers, X, 1).

ping(Id, N, Peers, X0) ->
    X = (X0 * 1103515245 + 12345) band 16#7fffffff,
    element((X bsr 8) rem N + 1, Peers) ! Id,
    X.

loop(Main, Id, N, M, Peers, X, Sent) ->
    receive
        pong when Sent < M ->
            loop(Main, Id, N, M, Peers, ping(Id, N, Peers, X), Sent + 1);
        pong ->
            Main ! done,
            loop(Main, Id, N, M, Peers, X, Sent);
        From ->
            element(From + 1, Peers) ! pong,
            loop(Main, Id, N, M, Peers, X, Sent)
    end.
