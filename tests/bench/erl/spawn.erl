%% bench: spawn N processes that block in receive; time the spawning, memory per idle
%% process (RSS growth / N), then the time to stop them all; see spawn.lua.
%% erl -noshell +S 2 -pa build/bench/erl -run spawn main [N]
-module(spawn).
-export([main/0, main/1]).

main() -> main([]).
main(Args) -> bench_util:run(fun() -> run(Args) end).

run(Args) ->
    N = bench_util:size(Args, 1, 100000),
    Base = erlang:system_info(process_count),
    Rss0 = bench_util:status_kb("VmRSS"),
    T0 = bench_util:now_ms(),
    Pids = spawn_all(N, []),                  % the last spawned first
    T1 = bench_util:now_ms(),
    wait_waiting(lists:sublist(Pids, 101)),
    timer:sleep(200),
    Rss1 = bench_util:status_kb("VmRSS"),
    Sampled = lists:sublist(lists:reverse(Pids), 100),
    Mem = lists:sum([element(2, process_info(P, memory)) || P <- Sampled]),
    bench_util:check(erlang:system_info(process_count) =:= Base + N, process_count),
    T2 = bench_util:now_ms(),
    [exit(P, kill) || P <- Pids],
    wait_count(Base),
    T3 = bench_util:now_ms(),
    bench_util:report("spawn", [{"n", N}], T1 - T0, N,
                      [{"rss_per_proc_bytes", (Rss1 - Rss0) * 1024 div N},
                       {"heap_bytes", Mem div length(Sampled)},
                       {"exit_us", (T3 - T2) * 1000 / N}]),
    bench_util:peak("spawn").

spawn_all(0, Acc) -> Acc;
spawn_all(I, Acc) -> spawn_all(I - 1, [spawn(fun idle/0) | Acc]).

idle() -> receive _ -> ok end.

wait_waiting(Pids) ->
    case [P || P <- Pids, process_info(P, status) =/= {status, waiting}] of
        [] -> ok;
        _ -> timer:sleep(10), wait_waiting(Pids)
    end.

wait_count(Base) ->
    case erlang:system_info(process_count) > Base of
        true -> timer:sleep(5), wait_count(Base);
        false -> ok
    end.
