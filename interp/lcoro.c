/* lcoro.c — preemption hook, transparent coroutines and chained debug hooks in a process. */
#include <stdatomic.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "lcoro.h"
#include "link.h"
#include "mbconf.h"
#include "proc.h"

/* ================================================================ program hooks */

/*
** The program's hooks (debug.sethook) live in a weak-keyed registry table: thread ->
** userdata holding mask, count and countdown, with the hook function as its user value.
** Our own hook stays installed on every thread and calls the program's when due.
*/
static const char HOOKKEY = 'h';

typedef struct uhook {
  int mask;     /* LUA_MASK* the program asked for */
  int count;    /* its count, 0 if none */
  int left;     /* instructions until its count hook is due */
  int owed;     /* count calls put off to the next firing (see program_count) */
} uhook;

static const char *const eventnames[] = {"call", "return", "line", "count", "tail call"};

/* Pushes the hook table (creating it if asked) and returns 1, or returns 0 pushing nothing. */
static int hooktable(lua_State *L, int create) {
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &HOOKKEY) == LUA_TTABLE) return 1;
  lua_pop(L, 1);
  if (!create) return 0;
  lua_createtable(L, 0, 2);
  lua_createtable(L, 0, 1);
  lua_pushliteral(L, "k");
  lua_setfield(L, -2, "__mode");
  lua_setmetatable(L, -2);
  lua_pushvalue(L, -1);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &HOOKKEY);
  return 1;
}

/* The program's hook record for thread co, pushed with its function below it; NULL if none. */
static uhook *gethook(lua_State *L, lua_State *co) {
  uhook *h;
  if (!lua_checkstack(L, 4) || !hooktable(L, 0)) return NULL;
  lua_pushthread(co);
  lua_xmove(co, L, 1);
  if (lua_rawget(L, -2) != LUA_TUSERDATA) {
    lua_pop(L, 2);
    return NULL;
  }
  h = lua_touserdata(L, -1);
  lua_getiuservalue(L, -1, 1);
  lua_replace(L, -3);
  return h;   /* stack: function, userdata */
}

static void call_program_hook(lua_State *L, lua_Debug *ar) {
  lua_pushvalue(L, -2);
  lua_pushstring(L, eventnames[ar->event]);
  if (ar->currentline >= 0) lua_pushinteger(L, ar->currentline);
  else lua_pushnil(L);
  lua_call(L, 2, 0);
}

static void program_event(lua_State *L, lua_Debug *ar) {
  uhook *h = gethook(L, L);
  if (h == NULL) return;
  int bit = ar->event == LUA_HOOKTAILCALL ? LUA_MASKCALL : 1 << ar->event;
  if (h->mask & bit) call_program_hook(L, ar);
  lua_pop(L, 2);
}

/*
** Count the program's count hook down by `armed` instructions; call it when due.
** Returns how many instructions our hook should wait next.
** The instructions of a Lua hook count too, and when a hook yields, Lua restarts the count
** as if none had run: calling the program's hook on a firing where we stop would lose count.
** So a firing where we stop (*stop set) calls nothing: a call due then is owed, and paid
** at the next firing, which in turn does not stop (*stop cleared). Either way the process
** stops within two firings and the program sees the calls stock Lua makes.
*/
static int program_count(lua_State *L, lua_Debug *ar, int armed, int *stop) {
  int next = MB_HOOK_COUNT, due = 0;
  uhook *h = gethook(L, L);
  if (h == NULL) return next;
  if (h->mask & LUA_MASKCOUNT) {
    h->left -= armed;
    if (h->left <= 0) {
      h->left = h->count;
      due = 1;
    }
    if (*stop && due && h->owed == 0) {
      h->owed = 1;
    } else if (due || h->owed > 0) {
      int n = h->owed + due;
      h->owed = 0;
      *stop = 0;
      while (n-- > 0) call_program_hook(L, ar);
    }
    if (h->left < next) next = h->left;
  }
  lua_pop(L, 2);
  return next;
}

static void rearm(lua_State *L, int count) {
  lua_sethook(L, lcoro_hook, lua_gethookmask(L), count);
}

/* ================================================================ preemption */

/*
** Runs every `count` VM instructions of every thread of the process. Adds the reductions,
** acts on pending signals, and stops the process when its slice is spent or it must exit.
** Where the VM cannot yield (inside a C call such as a table.sort comparator) the stop is
** owed: the hook comes back sooner and stops at the first yieldable point.
*/
static void stop_here(lua_State *L, proc *p) {
  p->stop_owed = 0;
  p->yield = p->exiting ? Y_EXIT : Y_PREEMPT;
  lua_yield(L, 0);
}

void lcoro_hook(lua_State *L, lua_Debug *ar) {
  proc *p = proc_of(L);
  int armed, want, stop, next = MB_HOOK_COUNT;
  /* Lua goes on to the line event of a step whose count event yielded: leave it */
  if (lua_status(L) != LUA_OK) return;
  if (ar->event != LUA_HOOKCOUNT) {
    if (p->user_hooks) program_event(L, ar);
    if (ar->event == LUA_HOOKLINE && p->stop_owed && lua_isyieldable(L)) stop_here(L, p);
    return;
  }
  armed = lua_gethookcount(L);
  p->reds += (uint64_t)armed;
  if (atomic_load_explicit(&p->sigpending, memory_order_relaxed)) link_signals(p);
  if (p->interrupted && !p->exiting) {
    rearm(L, next);
    proc_raise_interrupted(L, p);
  }
  want = p->exiting || p->reds >= p->slice_end;
  /* with a program line hook, stop at a line event, after the program has seen it: once a
  ** step yields, Lua calls no more hooks for it */
  stop = want && lua_isyieldable(L) && !(lua_gethookmask(L) & LUA_MASKLINE);
  if (p->user_hooks) next = program_count(L, ar, armed, &stop);
  if (stop) {
    if (armed != next) rearm(L, next);
    stop_here(L, p);
    return;
  }
  if (want && (lua_gethookmask(L) & LUA_MASKLINE) && lua_isyieldable(L)) {
    p->stop_owed = 1;
  } else if (want) {
    /* owed: inside a C call that cannot yield, or the program's hook just ran */
    if (next > MB_DEBT_HOOK_COUNT) next = MB_DEBT_HOOK_COUNT;
    if (p->exiting && !lua_isyieldable(L)) {
      rearm(L, next);
      proc_raise_killed(L);
    }
  }
  if (next != armed) rearm(L, next);
}

/* ================================================================ coroutines */

enum { CO_ERR = -1, CO_STOP = -2, CO_KILL = -3 };

static lua_State *getco(lua_State *L) {
  lua_State *co = lua_tothread(L, 1);
  luaL_argexpected(L, co, 1, "thread");
  return co;
}

/*
** Resume co with the narg values on top of L. If co stops for the process (receive, sleep,
** preemption, exit) rather than by a program yield, L must stop too: CO_STOP, and the
** caller yields, to call this again with narg 0 when the process runs on. Where L cannot
** yield, a preemption stays owed (co is resumed at once), a wait fails in co, and an exit
** unwinds L (CO_KILL). Otherwise returns the number of results moved to L, or CO_ERR with
** the error value on L's top.
*/
static int resume_co(lua_State *L, lua_State *co, int narg) {
  proc *p = proc_of(L);
  if (narg > 0) {
    if (!lua_checkstack(co, narg)) {
      lua_pushliteral(L, "too many arguments to resume");
      return CO_ERR;
    }
    lua_xmove(L, co, narg);
  }
  for (;;) {
    int nres, st;
    p->cur = co;
    st = lua_resume(co, L, narg, &nres);
    if (st == LUA_YIELD && p->yield != Y_NONE) {
      if (lua_isyieldable(L)) return CO_STOP;
      p->cur = L;
      if (p->yield == Y_EXIT) return CO_KILL;
      if (p->yield != Y_PREEMPT) p->wait_abort = 1;
      p->yield = Y_NONE;
      narg = 0;
      continue;
    }
    p->cur = L;
    if (st != LUA_OK && st != LUA_YIELD) {
      lua_xmove(co, L, 1);
      return p->exiting && p->killed ? CO_KILL : CO_ERR;
    }
    if (!lua_checkstack(L, nres + 1)) {
      lua_pop(co, nres);
      lua_pushliteral(L, "too many results to resume");
      return CO_ERR;
    }
    lua_xmove(co, L, nres);
    return nres;
  }
}

static int resume_finish(lua_State *L, int r);

static int resume_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  (void)ctx;
  return resume_finish(L, resume_co(L, lua_tothread(L, 1), 0));
}

static int resume_finish(lua_State *L, int r) {
  switch (r) {
    case CO_STOP: return lua_yieldk(L, 0, 0, resume_k);
    case CO_KILL: return proc_raise_killed(L);
    case CO_ERR:
      lua_pushboolean(L, 0);
      lua_insert(L, -2);
      return 2;
    default:
      lua_pushboolean(L, 1);
      lua_insert(L, -(r + 1));
      return r + 1;
  }
}

static int co_resume(lua_State *L) {
  lua_State *co = getco(L);
  return resume_finish(L, resume_co(L, co, lua_gettop(L) - 1));
}

static int wrap_finish(lua_State *L, int r);

static int wrap_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  (void)ctx;
  return wrap_finish(L, resume_co(L, lua_tothread(L, lua_upvalueindex(1)), 0));
}

/* As stock wrap: an error that killed the coroutine closes its pending variables and is
** re-raised in the caller, with position information added to a string message. */
static int wrap_finish(lua_State *L, int r) {
  lua_State *co = lua_tothread(L, lua_upvalueindex(1));
  if (r == CO_STOP) return lua_yieldk(L, 0, 0, wrap_k);
  if (r == CO_KILL) return proc_raise_killed(L);
  if (r == CO_ERR) {
    int st = lua_status(co);
    if (st != LUA_OK && st != LUA_YIELD) {
      st = lua_resetthread(co);
      lua_xmove(co, L, 1);
    }
    if (st != LUA_ERRMEM && lua_type(L, -1) == LUA_TSTRING) {
      luaL_where(L, 1);
      lua_insert(L, -2);
      lua_concat(L, 2);
    }
    return lua_error(L);
  }
  return r;
}

static int co_wrapped(lua_State *L) {
  lua_State *co = lua_tothread(L, lua_upvalueindex(1));
  return wrap_finish(L, resume_co(L, co, lua_gettop(L)));
}

/* The process's coroutines, in a weak-keyed registry table, so that the code server can
** look at the stacks of suspended ones too. */
static const char THREADS_KEY = 't';

static lua_State *new_coroutine(lua_State *L) {
  lua_State *co;
  luaL_checktype(L, 1, LUA_TFUNCTION);
  co = lua_newthread(L);
  lua_pushvalue(L, 1);
  lua_xmove(L, co, 1);
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &THREADS_KEY) != LUA_TTABLE) {
    lua_pop(L, 1);
    lua_createtable(L, 0, 4);
    lua_createtable(L, 0, 1);
    lua_pushliteral(L, "k");
    lua_setfield(L, -2, "__mode");
    lua_setmetatable(L, -2);
    lua_pushvalue(L, -1);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &THREADS_KEY);
  }
  lua_pushvalue(L, -2);
  lua_pushboolean(L, 1);
  lua_rawset(L, -3);
  lua_pop(L, 1);
  return co;
}

int lcoro_each_thread(lua_State *L, int (*f)(lua_State *co, void *ud), void *ud) {
  int found = 0;
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &THREADS_KEY) == LUA_TTABLE) {
    lua_pushnil(L);
    while (!found && lua_next(L, -2)) {
      lua_State *co = lua_tothread(L, -2);
      /* one that died of an error keeps its frames, but they can never run again */
      found = co != NULL && lua_status(co) <= LUA_YIELD && f(co, ud);
      lua_pop(L, 1);
    }
    if (found) lua_pop(L, 1);
  }
  lua_pop(L, 1);
  return found;
}

static int co_create(lua_State *L) {
  new_coroutine(L);
  return 1;
}

static int co_wrap(lua_State *L) {
  new_coroutine(L);
  lua_pushcclosure(L, co_wrapped, 1);
  return 1;
}

static int co_yield(lua_State *L) {
  proc *p = proc_of(L);
  if (L == p->body) {
    lua_pushliteral(L, "attempt to yield from outside a coroutine");
    return lua_error(L);
  }
  return lua_yield(L, lua_gettop(L));
}

static int co_isyieldable(lua_State *L) {
  proc *p = proc_of(L);
  lua_State *co = lua_isnone(L, 1) ? L : getco(L);
  lua_pushboolean(L, co != p->body && lua_isyieldable(co));
  return 1;
}

static int co_running(lua_State *L) {
  proc *p = proc_of(L);
  lua_pushthread(L);
  lua_pushboolean(L, L == p->body || L == p->L);
  return 2;
}

/* ================================================================ pcall, xpcall */

/*
** As stock, except that the error of a process being killed goes on up: a killed process
** runs no more of its own code, even under pcall (as Erlang's kill). The kill may have to
** be raised as an error where the VM cannot yield (inside a table.sort comparator, say).
*/
static int finish_pcall(lua_State *L, int status, lua_KContext extra) {
  proc *p = proc_of(L);
  if (status == LUA_OK || status == LUA_YIELD) return lua_gettop(L) - (int)extra;
  if (p->exiting && p->killed) return lua_error(L);
  lua_pushboolean(L, 0);
  lua_pushvalue(L, -2);
  return 2;
}

static int l_pcall(lua_State *L) {
  luaL_checkany(L, 1);
  lua_pushboolean(L, 1);
  lua_insert(L, 1);
  return finish_pcall(L, lua_pcallk(L, lua_gettop(L) - 2, LUA_MULTRET, 0, 0, finish_pcall),
                      0);
}

static int l_xpcall(lua_State *L) {
  int n = lua_gettop(L);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  lua_pushboolean(L, 1);
  lua_pushvalue(L, 1);
  lua_rotate(L, 3, 2);   /* true, f below f's arguments; the handler stays at 2 */
  return finish_pcall(L, lua_pcallk(L, n - 2, LUA_MULTRET, 2, 2, finish_pcall), 2);
}

/* ================================================================ debug.sethook */

static lua_State *thread_arg(lua_State *L, int *arg) {
  if (lua_isthread(L, 1)) {
    *arg = 1;
    return lua_tothread(L, 1);
  }
  *arg = 0;
  return L;
}

static int makemask(const char *smask, int count) {
  int mask = 0;
  if (strchr(smask, 'c')) mask |= LUA_MASKCALL;
  if (strchr(smask, 'r')) mask |= LUA_MASKRET;
  if (strchr(smask, 'l')) mask |= LUA_MASKLINE;
  if (count > 0) mask |= LUA_MASKCOUNT;
  return mask;
}

static int db_sethook(lua_State *L) {
  proc *p = proc_of(L);
  int arg, mask = 0, count = 0;
  lua_State *co = thread_arg(L, &arg);
  if (!lua_isnoneornil(L, arg + 1)) {
    const char *smask = luaL_checkstring(L, arg + 2);
    luaL_checktype(L, arg + 1, LUA_TFUNCTION);
    count = (int)luaL_optinteger(L, arg + 3, 0);
    mask = makemask(smask, count);
  }
  hooktable(L, 1);
  lua_pushthread(co);
  lua_xmove(co, L, 1);
  if (mask == 0) {
    lua_pushnil(L);
  } else {
    uhook *h = lua_newuserdatauv(L, sizeof *h, 1);
    h->mask = mask;
    h->count = count;
    h->left = count;
    h->owed = 0;
    lua_pushvalue(L, arg + 1);
    lua_setiuservalue(L, -2, 1);
    p->user_hooks = 1;
  }
  lua_rawset(L, -3);
  lua_sethook(co, lcoro_hook, LUA_MASKCOUNT | (mask & ~LUA_MASKCOUNT),
              count > 0 && count < MB_HOOK_COUNT ? count : MB_HOOK_COUNT);
  return 0;
}

static int db_gethook(lua_State *L) {
  int arg;
  char smask[4], *s = smask;
  lua_State *co = thread_arg(L, &arg);
  uhook *h = gethook(L, co);
  if (h == NULL) {
    luaL_pushfail(L);
    return 1;
  }
  if (h->mask & LUA_MASKCALL) *s++ = 'c';
  if (h->mask & LUA_MASKRET) *s++ = 'r';
  if (h->mask & LUA_MASKLINE) *s++ = 'l';
  *s = '\0';
  lua_pop(L, 1);
  lua_pushstring(L, smask);
  lua_pushinteger(L, h->count);
  return 3;
}

/* ================================================================ setup */

static void replace(lua_State *L, const char *lib, const luaL_Reg *fns) {
  lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  lua_getfield(L, -1, lib);
  luaL_setfuncs(L, fns, 0);
  lua_pop(L, 2);
}

void lcoro_open(lua_State *L) {
  static const luaL_Reg base_fns[] = {{"pcall", l_pcall}, {"xpcall", l_xpcall}, {NULL, NULL}};
  replace(L, LUA_GNAME, base_fns);
  lua_sethook(L, lcoro_hook, LUA_MASKCOUNT, MB_HOOK_COUNT);
}

void lcoro_adapt_coroutine(lua_State *L) {
  static const luaL_Reg co_fns[] = {
    {"create", co_create}, {"resume", co_resume}, {"wrap", co_wrap}, {"yield", co_yield},
    {"isyieldable", co_isyieldable}, {"running", co_running}, {NULL, NULL}};
  replace(L, LUA_COLIBNAME, co_fns);
}

void lcoro_adapt_debug(lua_State *L) {
  static const luaL_Reg db_fns[] = {
    {"sethook", db_sethook}, {"gethook", db_gethook}, {NULL, NULL}};
  replace(L, LUA_DBLIBNAME, db_fns);
}
