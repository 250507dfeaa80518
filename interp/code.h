/*
** code.h — the code server: every Lua module's compiled chunk, once per runtime, with at
** most two versions, and hot reload (as Erlang's code server; DESIGN.md "Code server").
**
** A module is compiled the first time any process requires it; every process loads the
** same bytecode. code.reload compiles the file again and publishes version N+1; each
** process that loaded the module switches at its next safe point (entering receive or sleep): the
** new chunk runs in it and the module table it already had is updated in place, so
** `M.f()` reaches the new code while functions held in locals keep the old (Erlang's
** qualified and local calls). A process whose stack still holds functions of the older
** version stays one of that version's users. Publishing wakes the users of the version
** before, so that idle ones pass a safe point and switch; and it asks the users of the
** version being dropped (the third load, or code.purge) to check their own stacks: those
** that still run its functions die with "killed".
**
** Versions after the first are compiled with the chunk name "@path (vN)", which is how a
** frame tells which version its function came from (and what tracebacks show).
**
** Threads: the table is under one lock (the code lock; it is never held while taking
** another). The epoch is atomic: a process compares it with the one it saw last.
*/
#ifndef CODE_H
#define CODE_H

#include <stdint.h>
#include <lua.h>

#include "proc.h"

int code_init(mb_runtime *rt);
void code_free(mb_runtime *rt);

/* The Lua library `code` (luaopen_code) and the package.searchers entry that routes
** require through the code server (installed by lenv at process setup). */
int luaopen_code(lua_State *L);
void code_install_searcher(lua_State *L);

/* At a safe point: if any module changed since p last looked, switch p to the current
** versions (runs Lua in p; errors are logged and p keeps the old version). */
void code_safe_point(lua_State *L, proc *p);

/* Does p still run version vsn of module name: it could not switch from it, or one of that
** version's functions (chunk name) is on a stack of its coroutines? (owner) */
int code_runs(proc *p, const char *name, uint32_t vsn, const char *chunkname);

/* p ends: it uses no version any more (owner, at death). */
void code_forget(proc *p);

#endif
