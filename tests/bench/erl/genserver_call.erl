%% bench: a gen_server holding an integer; N synchronous calls from 1 client, then 8
%% clients making N/8 calls each; see genserver_call.lua.
%% erl -noshell +S 2 -pa build/bench/erl -run genserver_call main [N]
-module(genserver_call).
-behaviour(gen_server).
-export([main/0, main/1, init/1, handle_call/3, handle_cast/2]).

main() -> main([]).
main(Args) -> bench_util:run(fun() -> run(Args) end).

run(Args) ->
    N = bench_util:size(Args, 1, 1000000),
    {ok, Pid} = gen_server:start_link(?MODULE, 0, []),
    T0 = bench_util:now_ms(),
    Last = calls(Pid, N, undefined),
    T1 = bench_util:now_ms(),
    bench_util:check(Last =:= N, {counted, Last}),
    report(1, N, T1 - T0),
    Me = self(),
    Per = N div 8,
    T2 = bench_util:now_ms(),
    [spawn(fun() -> calls(Pid, Per, undefined), Me ! done end) || _ <- lists:seq(1, 8)],
    [receive done -> ok end || _ <- lists:seq(1, 8)],
    T3 = bench_util:now_ms(),
    bench_util:check(gen_server:call(Pid, 0) =:= N + Per * 8, lost_calls),
    report(8, Per * 8, T3 - T2),
    bench_util:peak("genserver_call").

report(Clients, Calls, Ms) ->
    bench_util:report("genserver_call", [{"clients", Clients}, {"n", Calls}], Ms, Calls,
                      [{"calls_per_s", integer_to_list(round(Calls / (Ms / 1000)))}]).

calls(_, 0, Last) -> Last;
calls(Pid, I, _) -> calls(Pid, I - 1, gen_server:call(Pid, 1)).

init(N) -> {ok, N}.
handle_call(Req, _From, N) -> {reply, N + Req, N + Req}.
handle_cast(_, N) -> {noreply, N}.
