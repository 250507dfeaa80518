/*
** lenv.h — a process's Lua environment: the standard libraries as `lua` has them, with
** print, os.exit, warnings, coroutines and debug hooks adapted to processes, the process
** library, the runtime's embedded modules and the host's preloaded C libraries.
*/
#ifndef LENV_H
#define LENV_H

#include "proc.h"

/* Create p->L and p->body for p->boot. 0, or MB_ENOMEM (p->L stays NULL). */
int lenv_open(proc *p);

/* Pushes base's next (which pairs returns), whether or not L's globals have it yet. */
void lenv_push_next(lua_State *L);

#endif
