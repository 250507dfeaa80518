/*
** lcoro.h — preemption and coroutines inside a process.
**
** The count hook (lcoro_hook) adds up reductions and stops the process when its slice is
** spent or an exit was decided, by yielding with no values. A process's body is a
** coroutine; a user coroutine inside it is resumed by our coroutine.resume/wrap, which tell
** a stop for the process (p->yield != Y_NONE) from a user yield and pass the former up to
** the scheduler, resuming the inner coroutine where it stopped when the process runs again.
** The program sees stock coroutine behaviour; the body counts as the main thread.
**
** debug.sethook stores the program's hook per thread and keeps the count hook installed,
** calling the program's hook for the events it asked for. pcall and xpcall let the error of
** a process being killed through, so a killed process runs no more of its code.
*/
#ifndef LCORO_H
#define LCORO_H

#include <lua.h>

/* Install the hook on L and replace pcall/xpcall. */
void lcoro_open(lua_State *L);
/* Replace coroutine.* / debug.sethook and gethook, once each library is open. */
void lcoro_adapt_coroutine(lua_State *L);
void lcoro_adapt_debug(lua_State *L);

void lcoro_hook(lua_State *L, lua_Debug *ar);

/* Calls f on each coroutine the process created (a weak table keeps them) until f returns
** nonzero; returns that. Needs no allocation, so it may run in a hook. */
int lcoro_each_thread(lua_State *L, int (*f)(lua_State *co, void *ud), void *ud);

#endif
