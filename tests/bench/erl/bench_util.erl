%% Helpers shared by the Erlang benchmark workloads: argument sizes, the result line every
%% workload prints (the same form as tests/bench/benchlib.lua), the peak RSS line, and a
%% wrapper that makes the node halt whatever happens.
-module(bench_util).
-export([run/1, size/3, now_ms/0, report/5, status_kb/1, peak/1, check/2]).

%% Runs F, then halts the node: 0 when F returned, 1 when it raised.
run(F) ->
    try F() of
        _ -> halt(0)
    catch
        Class:Reason:Stack ->
            io:format(standard_error, "bench failed: ~p:~p~n~p~n", [Class, Reason, Stack]),
            halt(1)
    end.

%% The integer argument #I of -run, or Default when it is absent.
size(Args, I, _Default) when length(Args) >= I -> list_to_integer(lists:nth(I, Args));
size(_, _, Default) -> Default.

%% Milliseconds (float) from the monotonic clock.
now_ms() -> erlang:monotonic_time(nanosecond) / 1.0e6.

%% bench=Name <fields> seconds=S per_op_us=U <extra>; Fields and Extra are [{Key, Value}].
report(Name, Fields, Ms, Ops, Extra) ->
    io:put_chars(["bench=", Name, kvs(Fields),
                  io_lib:format(" seconds=~.3f per_op_us=~.3f", [Ms / 1000, Ms * 1000 / Ops]),
                  kvs(Extra), "\n"]).

kvs(KVs) -> [[" ", K, "=", value(V)] || {K, V} <- KVs].

value(V) when is_integer(V) -> integer_to_list(V);
value(V) when is_float(V) -> io_lib:format("~.3f", [V]);
value(V) when is_atom(V) -> atom_to_list(V);
value(V) -> V.

%% A field of /proc/self/status in kB (VmRSS, VmHWM, ...).
status_kb(Field) ->
    {ok, Status} = file:read_file("/proc/self/status"),
    {match, [Kb]} = re:run(Status, Field ++ ":\\s*(\\d+)", [{capture, all_but_first, list}]),
    list_to_integer(Kb).

%% The last line of a workload: its peak resident set (VmHWM).
peak(Name) -> io:put_chars(["bench=", Name, " peak_rss_kb=", integer_to_list(status_kb("VmHWM")), "\n"]).

check(true, _) -> ok;
check(false, What) -> error({bench_check_failed, What}).
