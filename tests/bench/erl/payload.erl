%% bench: round trips of a nested map of about 1 KB (K=3) and about 100 KB (K=317); the
%% echo process sends back the payload it received; see payload.lua. Lua tables with
%% string keys are maps with atom keys, arrays are lists, strings other than the atom-like
%% "payload" are binaries (copied on send, as Lua strings are): the terms are then 1,016 B
%% and 102 KB (erts_debug:flat_size). A third argument "lists" makes those strings
%% charlists instead (1.7 KB and 203 KB, about twice the copy time), for comparison only.
%% erl -noshell +S 2 -pa build/bench/erl -run payload main [Rounds1kb] [Rounds100kb] [lists]
-module(payload).
-export([main/0, main/1]).

main() -> main([]).
main(Args) -> bench_util:run(fun() -> run(Args) end).

run(Args) ->
    Echo = spawn(fun echo/0),
    put(strings, case Args of [_, _, "lists" | _] -> lists; _ -> binaries end),
    variant(Echo, "1kb", 3, bench_util:size(Args, 1, 100000)),
    variant(Echo, "100kb", 317, bench_util:size(Args, 2, 2000)),
    bench_util:peak("payload").

variant(Echo, Name, K, Rounds) ->
    Msg = {self(), payload(K)},
    T0 = bench_util:now_ms(),
    {Back, Ok} = rounds(Echo, Msg, K, Rounds, undefined, true),
    T1 = bench_util:now_ms(),
    bench_util:check(Ok andalso Back =:= payload(K), {changed, Name}),
    bench_util:report("payload", [{"variant", Name}, {"k", K}, {"n", Rounds}], T1 - T0, Rounds,
                      [{"strings", get(strings)} || get(strings) =:= lists]).

rounds(_, _, _, 0, Back, Ok) -> {Back, Ok};
rounds(Echo, Msg, K, I, _, Ok) ->
    Echo ! Msg,
    receive Back -> rounds(Echo, Msg, K, I - 1, Back, Ok andalso maps:get(count, Back) =:= K) end.

payload(K) ->
    #{kind => payload, count => K, items => [item(I) || I <- lists:seq(1, K)]}.

item(I) ->
    S = integer_to_list(I),
    #{id => I, name => str("item-" ++ S), score => I * 1.5,
      tags => [str("tag-a-" ++ S), str("tag-b-" ++ S)], pos => #{x => I, y => 2 * I}}.

str(S) ->
    case get(strings) of
        lists -> S;
        binaries -> list_to_binary(S)
    end.

echo() ->
    receive {From, P} -> From ! P end,
    echo().
