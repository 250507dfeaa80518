/*
** lproc.h — the `process` library (luaopen_process) and the Lua side of a mailbox.
**
** Decoded messages wait in a Lua table of the process, q[qhead .. qtail-1] (holes where
** a selective receive took one out), after the undecoded items of the mailbox's private
** list: each message is decoded once, when a receive first reaches it.
*/
#ifndef LPROC_H
#define LPROC_H

#include <stdint.h>
#include <lua.h>

#include "proc.h"

int luaopen_process(lua_State *L);

/* The metatable shared by all light userdata: prints pids and refs (in setup). */
void lproc_open_terms(lua_State *L);

/* Push a pid, ref or other term. */
static inline void lproc_pushterm(lua_State *L, uint64_t v) {
  lua_pushlightuserdata(L, (void *)(uintptr_t)v);
}

/* A new ref that marks p's mailbox: a receive for it skips what came before (owner). */
uint64_t lproc_make_ref(proc *p);

/* Remove a delivered DOWN for ref from the decoded messages (demonitor's flush). */
int lproc_flush_down(lua_State *L, proc *p, uint64_t ref);

#endif
