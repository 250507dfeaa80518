/*
** code.h — the code server: every Lua module's compiled chunk, once per runtime, with at
** most two versions, and hot reload (as Erlang's code server; DESIGN.md "Code server").
**
** A module is compiled the first time any process requires it; every process whose
** package.path finds the same file (or no file: the module stays loaded) loads the same
** bytecode; a process whose path finds another file of that name loads it itself, untracked.
** code.reload compiles the file again and publishes version N+1; each process that loaded
** the module switches at its next safe point (entering or waking in receive or sleep,
** unless code.switching(false) holds it, as behaviours do during a callback): the new
** chunk runs in it and the module table it already had is updated in place, so `M.f()`
** reaches the new code while functions held in locals keep the old (Erlang's qualified and
** local calls). A process whose stack still holds functions of the older version stays one
** of that version's users. Publishing wakes the users of the version before, so that idle
** ones pass a safe point and switch; and it asks the users of the version being dropped
** (the third load, or code.purge) to check their own stacks: those that still run its
** functions die with "killed". purge and soft_purge wait for those answers.
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
** require through the code server (installed by lenv when package opens; package is the
** stack index of the package table). */
int luaopen_code(lua_State *L);
void code_install_searcher(lua_State *L, int package);

/* At a safe point: if any module changed since p last looked, switch p to the current
** versions (runs Lua in p; errors are logged and p keeps the old version). */
void code_safe_point(lua_State *L, proc *p);

/* The code-check signal (SIG_CODECHECK) reached p (owner): with no data it only woke p to
** pass a safe point; else it asks whether p still runs a version, kills p if it does and
** the version is dropped, and answers the asker. */
void code_on_check(proc *p, const mbox_item *m);
/* A code-check signal found its target dead: answer "does not run it". */
void code_on_check_dead(mb_runtime *rt, const mbox_item *m);

/* p ends: it uses no version any more (owner, at death). */
void code_forget(proc *p);

#endif
