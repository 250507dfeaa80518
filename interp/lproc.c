/* lproc.c — the `process` library: spawning, messages, selective receive, signals, names. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "code.h"
#include "link.h"
#include "lenv.h"
#include "lproc.h"
#include "mbconf.h"
#include "msg.h"
#include "pid.h"
#include "proc.h"
#include "reg.h"
#include "rt.h"
#include "sched.h"
#include "timer.h"

/* Registry key of the metatable that marks process.any_of tables. */
static const char ANYOF_KEY = 'a';

/* ================================================================ arguments */

/* The running process; a process that is being killed may not do anything more. */
static proc *self(lua_State *L) {
  proc *p = proc_of(L);
  if (p->exiting) proc_raise_killed(L);
  return p;
}

static uint64_t toterm(lua_State *L, int i) {
  if (!lua_islightuserdata(L, i)) return 0;
  uint64_t v = (uint64_t)(uintptr_t)lua_touserdata(L, i);
  return term_is(v) ? v : 0;
}

static const char *kindname(lua_State *L, int i) {
  uint64_t v = toterm(L, i);
  if (term_ispid(v)) return "pid";
  if (term_isref(v)) return "ref";
  return luaL_typename(L, i);
}

static int wrongtype(lua_State *L, int i, const char *expected) {
  return luaL_argerror(L, i, lua_pushfstring(L, "%s expected, got %s", expected,
                                             kindname(L, i)));
}

static uint64_t checkpid(lua_State *L, int i) {
  uint64_t v = toterm(L, i);
  if (!term_ispid(v)) wrongtype(L, i, "pid");
  return v;
}

static uint64_t checkref(lua_State *L, int i) {
  uint64_t v = toterm(L, i);
  if (!term_isref(v)) wrongtype(L, i, "ref");
  return v;
}

static const char *checkname(lua_State *L, int i) {
  const char *name;
  if (lua_type(L, i) != LUA_TSTRING) wrongtype(L, i, "name");
  name = lua_tostring(L, i);
  if (strcmp(name, "undefined") == 0)
    luaL_argerror(L, i, "'undefined' cannot be a process name");
  return name;
}

/* A pid, or the pid registered under a name (an unknown name raises). */
static uint64_t checkdest(lua_State *L, int i) {
  if (lua_type(L, i) == LUA_TSTRING) {
    uint64_t pid = reg_whereis(proc_of(L)->rt, lua_tostring(L, i));
    if (pid == 0)
      luaL_argerror(L, i, lua_pushfstring(L, "no process registered as '%s'",
                                          lua_tostring(L, i)));
    return pid;
  }
  if (!term_ispid(toterm(L, i))) wrongtype(L, i, "pid or name");
  return toterm(L, i);
}

/* Milliseconds from a timeout argument: nil, "infinity" or math.huge -> -1 (forever). */
static double checktimeout(lua_State *L, int i) {
  double ms;
  if (lua_isnoneornil(L, i)) return -1;
  if (lua_type(L, i) == LUA_TSTRING && strcmp(lua_tostring(L, i), "infinity") == 0) return -1;
  if (lua_type(L, i) != LUA_TNUMBER) wrongtype(L, i, "timeout (ms or \"infinity\")");
  ms = lua_tonumber(L, i);
  if (!(ms >= 0)) luaL_argerror(L, i, "timeout must not be negative");
  return isinf(ms) ? -1 : ms;
}

/* Encode n values at idx with the thread's scratch; raise the codec's message on failure. */
static const unsigned char *encode(lua_State *L, int idx, int n, const char *root,
                                   size_t *len) {
  const unsigned char *blob;
  if (msg_encode(L, idx, n, sched_encoder(), root, &blob, len) != 0) lua_error(L);
  return blob;
}

static mbox_item *newitem(lua_State *L, int kind, uint64_t from, uint64_t ref,
                          const unsigned char *blob, size_t len) {
  mbox_item *m = mbox_item_new(kind, from, ref, blob, len);
  if (m == NULL) luaL_error(L, "not enough memory");
  return m;
}

/* ================================================================ spawning */


static int same(const char *a, const char *b) {
  return a == b || (a && b && strcmp(a, b) == 0);
}

/* The package.path/cpath a child starts with: the parent's. The parent's set is shared
** while its package.path and cpath are still the ones it started with (or package is not
** open yet); after a change the parent gets a new set for this and later children.
** 0, or -1 when out of memory. */
static int inherit_paths(lua_State *L, spawn_req *req) {
  proc *p = proc_of(L);
  lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  if (lua_getfield(L, -1, LUA_LOADLIBNAME) == LUA_TTABLE) {
    lua_getfield(L, -1, "path");
    lua_getfield(L, -2, "cpath");
    const char *path = lua_tostring(L, -2), *cpath = lua_tostring(L, -1);
    if (p->paths == NULL || !same(p->paths->path, path) || !same(p->paths->cpath, cpath)) {
      pathset *ps = pathset_new(path, cpath);
      if (ps == NULL) return -1;
      pathset_unref(p->paths);
      p->paths = ps;
    }
    lua_pop(L, 2);
  }
  lua_pop(L, 2);
  req->paths = pathset_ref(p->paths);
  return 0;
}

/* Build the request for the values at first..top: a function or "mod.fn", then arguments. */
static spawn_req *spawn_request(lua_State *L, int first) {
  int n = lua_gettop(L) - first + 1, t = lua_type(L, first);
  const unsigned char *blob;
  size_t len;
  spawn_req *req;
  if (t == LUA_TSTRING) {
    const char *dot = strrchr(lua_tostring(L, first), '.');
    if (dot == NULL || dot == lua_tostring(L, first) || dot[1] == '\0')
      luaL_argerror(L, first, "\"module.function\" expected");
    blob = encode(L, first + 1, n - 1, "arg", &len);
  } else {
    luaL_argexpected(L, t == LUA_TFUNCTION, first, "function or \"module.function\"");
    blob = encode(L, first, n, n == 1 ? "function" : "arg", &len);
  }
  req = calloc(1, sizeof *req);
  if (req == NULL || (req->blob = malloc(len ? len : 1)) == NULL) {
    free(req);
    luaL_error(L, "not enough memory");
    return NULL;
  }
  memcpy(req->blob, blob, len);
  req->len = len;
  req->kind = t == LUA_TSTRING ? SPAWN_MFA : SPAWN_FUNC;
  if ((t == LUA_TSTRING && (req->what = strdup(lua_tostring(L, first))) == NULL) ||
      inherit_paths(L, req) != 0) {
    spawn_req_free(req);
    luaL_error(L, "not enough memory");
    return NULL;
  }
  return req;
}

/* Ref-creating calls mark the mailbox: a receive for that ref skips what came before,
** including what is still in the inbox (taken first, so it is counted). */
static void mark(proc *p, uint64_t ref) {
  link_signals(p);
  p->mark_ref = ref;
  p->mark_seq = p->qtail + p->box.npriv;
}

static int spawn_with(lua_State *L, int first, spawn_opts *o, const char *fname) {
  proc *p = self(L);
  uint64_t pid;
  int st = proc_spawn(p->rt, p, spawn_request(L, first), o, &pid);
  p->reds += 10;
  if (st == MB_ENAME)
    return luaL_error(L, "bad argument #1 to '%s' (name '%s' is already registered)", fname,
                      o->name);
  if (st != 0) return luaL_error(L, "%s: %s", fname, mb_strerror(st));
  lproc_pushterm(L, pid);
  if (o->monitor == 0) return 1;
  mark(p, o->monitor_ref);
  lproc_pushterm(L, o->monitor_ref);
  return 2;
}

static int l_spawn(lua_State *L) {
  spawn_opts o = {0};
  return spawn_with(L, 1, &o, "spawn");
}

static int l_spawn_link(lua_State *L) {
  spawn_opts o = {0};
  o.link = proc_of(L)->pid;
  return spawn_with(L, 1, &o, "spawn_link");
}

static int l_spawn_monitor(lua_State *L) {
  spawn_opts o = {0};
  o.monitor = proc_of(L)->pid;
  return spawn_with(L, 1, &o, "spawn_monitor");
}

static int optflag(lua_State *L, int opts, const char *key) {
  int v = lua_getfield(L, opts, key) != LUA_TNIL && lua_toboolean(L, -1);
  lua_pop(L, 1);
  return v;
}

static int l_spawn_opt(lua_State *L) {
  spawn_opts o = {0};
  proc *p = proc_of(L);
  luaL_checktype(L, 1, LUA_TTABLE);
  if (optflag(L, 1, "link")) o.link = p->pid;
  if (optflag(L, 1, "monitor")) o.monitor = p->pid;
  o.trap_exit = optflag(L, 1, "trap_exit");
  if (lua_getfield(L, 1, "max_heap") != LUA_TNIL) {
    lua_Integer n = lua_tointeger(L, -1);
    if (!lua_isinteger(L, -1) || n <= 0)
      luaL_argerror(L, 1, "max_heap must be a positive integer (bytes)");
    o.max_heap = (size_t)n;
  }
  if (lua_getfield(L, 1, "name") != LUA_TNIL) {
    if (lua_type(L, -1) != LUA_TSTRING || strcmp(lua_tostring(L, -1), "undefined") == 0)
      luaL_argerror(L, 1, "name must be a string other than 'undefined'");
    o.name = lua_tostring(L, -1);
  }
  lua_pop(L, 2);   /* the name string stays referenced by the options table */
  return spawn_with(L, 2, &o, "spawn_opt");
}

/* ================================================================ sending */

static int l_self(lua_State *L) {
  lproc_pushterm(L, proc_of(L)->pid);
  return 1;
}

/* Send to an alias: to its owner while it is active, else nowhere (as Erlang). */
static void send_alias(lua_State *L, proc *p, uint64_t alias, const unsigned char *blob,
                       size_t len) {
  uint64_t owner = reg_alias_owner(p->rt, alias);
  mbox_item *m;
  if (owner == 0) return;
  m = newitem(L, SIG_MSG, p->pid, alias, blob, len);
  m->flags |= MBOX_ALIAS;
  proc_deliver(p->rt, owner, m);
}

static int l_send(lua_State *L) {
  proc *p = self(L);
  uint64_t alias = term_isref(toterm(L, 1)) ? toterm(L, 1) : 0;
  uint64_t dest = alias ? 0 : checkdest(L, 1);
  size_t len;
  const unsigned char *blob;
  if (lua_isnoneornil(L, 2)) wrongtype(L, 2, "message");
  lua_settop(L, 2);
  blob = encode(L, 2, 1, "msg", &len);
  if (alias) send_alias(L, p, alias, blob, len);
  else proc_deliver(p->rt, dest, newitem(L, SIG_MSG, p->pid, 0, blob, len));
  p->msgs_out++;
  p->reds += 1 + len / 256;   /* like Erlang, message passing costs reductions */
  return 1;
}

/* ================================================================ the decoded queue */

static void getq(lua_State *L, proc *p) { lua_rawgeti(L, LUA_REGISTRYINDEX, p->qref); }

/* Decode the next undecoded message onto the stack (0 if none). An item whose decoding
** unwinds is still freed: it waits in p->decoding and goes at the next call. */
static int decode_next(lua_State *L, proc *p) {
  mbox_item *m;
  int n;
  if (p->decoding) {
    mbox_item_free(p->decoding);
    p->decoding = NULL;
  }
  if ((m = mbox_shift(&p->box)) == NULL) return 0;
  p->decoding = m;
  n = msg_decode(L, m->data, m->len);
  p->decoding = NULL;
  mbox_item_free(m);
  if (n != 1) {
    if (n > 0) lua_pop(L, n);
    luaL_error(L, "received a malformed message");
  }
  /* a process that keeps receiving (a server) makes short-lived tables per message:
  ** the generational collector takes them for less. Switching costs a full collection,
  ** which a process that lives for a few messages never pays. */
  if (++p->msgs_in == MB_GEN_GC_AFTER) lua_gc(L, LUA_GCGEN, 0, 0);
  return 1;
}

/* A decoded message taken without being queued still uses up its position, so positions
** (and the mark, which counts them) stay those of arrival order. */
static void pass_over(proc *p) {
  if (p->qhead == p->qtail) p->qhead++;
  p->qtail++;
}

static void store(lua_State *L, proc *p, int q) {
  lua_pushvalue(L, -1);
  lua_rawseti(L, q, (lua_Integer)p->qtail++);
  p->qlen++;
}

/* Take message seq out of q. An emptied queue starts again at 1, and the mark moves along. */
static void take(lua_State *L, proc *p, int q, uint64_t seq) {
  lua_pushnil(L);
  lua_rawseti(L, q, (lua_Integer)seq);
  p->qlen--;
  if (seq != p->qhead) return;
  while (p->qhead < p->qtail) {
    int t = lua_rawgeti(L, q, (lua_Integer)p->qhead);
    lua_pop(L, 1);
    if (t != LUA_TNIL) break;
    p->qhead++;
  }
  if (p->qhead == p->qtail) {
    p->mark_seq = p->mark_seq > p->qtail ? 1 + (p->mark_seq - p->qtail) : 1;
    p->qhead = p->qtail = 1;
  }
}

/* ================================================================ matching */

enum { M_ANY, M_FUNC, M_PAT, M_ANYOF };

static int matcher_kind(lua_State *L, int i) {
  switch (lua_type(L, i)) {
    case LUA_TNONE:
    case LUA_TNIL: return M_ANY;
    case LUA_TFUNCTION: return M_FUNC;
    case LUA_TTABLE:
      if (lua_getmetatable(L, i)) {
        int anyof = lua_rawgetp(L, LUA_REGISTRYINDEX, &ANYOF_KEY) && lua_rawequal(L, -1, -2);
        lua_pop(L, 2);
        if (anyof) return M_ANYOF;
      }
      return M_PAT;
    default:
      return wrongtype(L, i, "matcher (function or pattern table)");
  }
}

static int is_any(lua_State *L, int i) { return toterm(L, i) == TERM_ANY; }

/* msg (at index msg) matches pattern pat: every key of pat is ANY, or equal, or a table
** matching recursively. */
static int pat_match(lua_State *L, int msg, int pat, int depth) {
  if (!lua_istable(L, msg)) return 0;
  luaL_checkstack(L, 4, "pattern too deep");
  lua_pushnil(L);
  while (lua_next(L, pat)) {
    int ok = 1;
    if (!is_any(L, -1)) {
      lua_pushvalue(L, -2);
      lua_rawget(L, msg);
      ok = lua_rawequal(L, -1, -2) ||
           (depth < MB_MSG_MAXDEPTH && lua_istable(L, -2) &&
            pat_match(L, lua_absindex(L, -1), lua_absindex(L, -2), depth + 1));
      lua_pop(L, 1);
    }
    lua_pop(L, 1);
    if (!ok) {
      lua_pop(L, 1);
      return 0;
    }
  }
  return 1;
}

static int matches(lua_State *L, int kind, int matcher, int msg) {
  int ok = 0;
  proc *p = proc_of(L);
  p->scanned++;
  p->reds++;
  switch (kind) {
    case M_ANY: return 1;
    case M_PAT: return pat_match(L, msg, matcher, 0);
    case M_FUNC:
      lua_pushvalue(L, matcher);
      lua_pushvalue(L, msg);
      lua_call(L, 1, 1);
      ok = lua_toboolean(L, -1);
      lua_pop(L, 1);
      return ok;
    default:
      for (lua_Integer i = 1; !ok && lua_rawgeti(L, matcher, i) == LUA_TTABLE; i++) {
        ok = pat_match(L, msg, lua_gettop(L), 0);
        lua_pop(L, 1);
      }
      lua_pop(L, !ok);
      return ok;
  }
}

/* Does pattern pat require a value equal to ref somewhere (not counting ANY)? */
static int pat_has(lua_State *L, int pat, uint64_t ref, int depth) {
  luaL_checkstack(L, 3, "pattern too deep");
  lua_pushnil(L);
  while (lua_next(L, pat)) {
    int has = toterm(L, -1) == ref ||
              (depth < 8 && lua_istable(L, -1) && pat_has(L, lua_gettop(L), ref, depth + 1));
    lua_pop(L, 1);
    if (has) {
      lua_pop(L, 1);
      return 1;
    }
  }
  return 0;
}

/*
** Where a receive may start looking. A pattern that requires the newest ref made here can
** only match messages that came after the ref was made (Erlang's receive mark), so a
** call-style receive does not go through a long mailbox of unrelated messages.
*/
static uint64_t start_pos(lua_State *L, proc *p, int kind, int matcher) {
  int all = 0;
  if (p->mark_ref == 0 || p->mark_seq <= p->qhead) return p->qhead;
  if (kind == M_PAT) all = pat_has(L, matcher, p->mark_ref, 0);
  if (kind == M_ANYOF) {
    all = 1;
    for (lua_Integer i = 1; all && lua_rawgeti(L, matcher, i) == LUA_TTABLE; i++) {
      all = pat_has(L, lua_gettop(L), p->mark_ref, 0);
      lua_pop(L, 1);
    }
    lua_pop(L, all);   /* the non-table that ended the loop, if it got that far */
  }
  return all ? p->mark_seq : p->qhead;
}

/*
** Find the first message at or after *pos that matches: among decoded messages, then by
** decoding more (each decoded message that does not match is queued for later receives).
** A match is removed and pushed (returns 1); else *pos ends past everything looked at.
** A function matcher may raise, so its candidates are queued before it sees them.
*/
static int scan(lua_State *L, proc *p, int kind, int matcher, uint64_t *pos) {
  int q;
  getq(L, p);
  q = lua_gettop(L);
  if (*pos < p->qhead) *pos = p->qhead;
  for (; *pos < p->qtail; (*pos)++) {
    if (lua_rawgeti(L, q, (lua_Integer)*pos) != LUA_TNIL &&
        matches(L, kind, matcher, lua_gettop(L))) {
      take(L, p, q, *pos);
      lua_remove(L, q);
      return 1;
    }
    lua_pop(L, 1);
  }
  while (decode_next(L, p)) {
    int skip = p->qtail < *pos;
    if (skip || kind == M_FUNC) store(L, p, q);
    if (!skip && matches(L, kind, matcher, lua_gettop(L))) {
      if (kind == M_FUNC) take(L, p, q, p->qtail - 1);
      else pass_over(p);
      lua_remove(L, q);
      *pos = p->qtail;
      return 1;
    }
    if (!skip && kind != M_FUNC) store(L, p, q);
    lua_pop(L, 1);
  }
  *pos = p->qtail;
  lua_pop(L, 1);
  return 0;
}

/* ================================================================ waiting */

static void start_timer(proc *p, uint64_t deadline) {
  uint32_t gen = atomic_fetch_add(&p->wait_gen, 1) + 1;
  p->wait_timer = timer_wake(p->rt, atomic_load(&p->pid), gen, deadline);
}

static int timer_fired(proc *p) {
  return p->wait_timer != 0 && atomic_load(&p->tmo_fired) == atomic_load(&p->wait_gen);
}

/* The wait is over: cancel its timer; a late firing then finds a newer generation. */
static void end_wait(proc *p) {
  if (p->wait_timer == 0) return;
  timer_cancel(p->rt, p->wait_timer, NULL);
  p->wait_timer = 0;
  atomic_fetch_add(&p->wait_gen, 1);
}

/* Before and after a wait: act on signals; a decided exit unwinds; an aborted wait fails. */
static void wait_check(lua_State *L, proc *p) {
  link_signals(p);
  if (p->exiting) {
    end_wait(p);
    proc_raise_killed(L);
  }
  if (p->interrupted) {
    end_wait(p);
    proc_raise_interrupted(L, p);
  }
  if (p->wait_abort) {
    p->wait_abort = 0;
    end_wait(p);
    luaL_error(L, "attempt to yield across a C-call boundary");
  }
}

static int cannot_wait(lua_State *L, proc *p) {
  end_wait(p);
  return luaL_error(L, "attempt to yield across a C-call boundary");
}

/* Receive stack: 1 matcher, 2 timeout, 3 scan position, 4 deadline (ns; -1 = none). */
enum { RECV_PLAIN, RECV_INFO };

/* A receive or a sleep is a safe point (entering it, and waking in it): switch to reloaded
** modules before a message is handed back or the sleep returns, so the code that runs next
** is the new one (a `while true do M.tick() process.sleep(1000) end` loop picks it up). */
static void safe_point(lua_State *L, proc *p) {
  if (p->code_hold) return;
  if (p->code_epoch != atomic_load_explicit(&p->rt->code_epoch, memory_order_relaxed) ||
      p->old_code > 0)
    code_safe_point(L, p);
}

static int recv_step(lua_State *L, int status, lua_KContext ctx) {
  proc *p = proc_of(L);
  int kind = matcher_kind(L, 1);
  uint64_t pos = (uint64_t)lua_tointeger(L, 3);
  double deadline = lua_tonumber(L, 4);
  (void)status;
  safe_point(L, p);
  wait_check(L, p);
  if (scan(L, p, kind, 1, &pos)) {
    end_wait(p);
    if (ctx == RECV_INFO) lua_rawgeti(L, -1, 2);
    return 1;
  }
  lua_pushinteger(L, (lua_Integer)pos);
  lua_replace(L, 3);
  if (deadline >= 0) {
    if (timer_fired(p) || deadline <= (double)timer_now()) {
      end_wait(p);
      lua_pushnil(L);
      return 1;
    }
    if (p->wait_timer == 0) start_timer(p, (uint64_t)deadline);
  }
  if (!lua_isyieldable(L)) return cannot_wait(L, p);
  p->yield = Y_WAIT;
  return lua_yieldk(L, 0, ctx, recv_step);
}

static int receive_from(lua_State *L, proc *p, double ms, lua_KContext ctx) {
  int kind = matcher_kind(L, 1);
  lua_settop(L, 2);
  lua_pushinteger(L, (lua_Integer)start_pos(L, p, kind, 1));
  lua_pushnumber(L, ms < 0 ? -1.0 : (double)timer_now() + ms * 1e6);
  return recv_step(L, LUA_OK, ctx);
}

static int l_receive(lua_State *L) {
  proc *p = self(L);
  matcher_kind(L, 1);
  return receive_from(L, p, checktimeout(L, 2), RECV_PLAIN);
}

static int sleep_step(lua_State *L, int status, lua_KContext ctx) {
  proc *p = proc_of(L);
  (void)status;
  (void)ctx;
  safe_point(L, p);
  wait_check(L, p);
  if (timer_fired(p)) {
    end_wait(p);
    return 0;
  }
  if (!lua_isyieldable(L)) return cannot_wait(L, p);
  p->yield = Y_SLEEP;
  return lua_yieldk(L, 0, 0, sleep_step);
}

static int yield_k(lua_State *L, int status, lua_KContext ctx) {
  (void)L;
  (void)status;
  (void)ctx;
  return 0;
}

static int l_yield(lua_State *L) {
  proc *p = self(L);
  if (!lua_isyieldable(L)) return 0;
  p->yield = Y_PREEMPT;
  return lua_yieldk(L, 0, 0, yield_k);
}

static int l_sleep(lua_State *L) {
  proc *p = self(L);
  double ms;
  if (lua_isnoneornil(L, 1)) wrongtype(L, 1, "number");
  ms = checktimeout(L, 1);
  lua_settop(L, 0);
  if (ms == 0) return l_yield(L);
  if (ms > 0) start_timer(p, timer_now() + (uint64_t)(ms * 1e6));
  return sleep_step(L, LUA_OK, 0);
}

/* ================================================================ links and monitors */

static int l_link(lua_State *L) {
  proc *p = self(L);
  if (link_link(p, checkpid(L, 1)) == MB_ENOPROC) {
    lua_pushliteral(L, "noproc");
    return lua_error(L);
  }
  lua_pushboolean(L, 1);
  return 1;
}

static int l_unlink(lua_State *L) {
  proc *p = self(L);
  link_unlink(p, checkpid(L, 1));
  lua_pushboolean(L, 1);
  return 1;
}

static int l_monitor(lua_State *L) {
  proc *p = self(L);
  const char *name = lua_type(L, 1) == LUA_TSTRING ? checkname(L, 1) : NULL;
  uint64_t pid = name ? reg_whereis(p->rt, name) : checkpid(L, 1);
  uint64_t ref = rt_make_ref(p->rt);
  int alias = 0;
  if (!lua_isnoneornil(L, 2)) {
    luaL_checktype(L, 2, LUA_TTABLE);
    alias = optflag(L, 2, "alias");
  }
  mark(p, ref);
  if (link_monitor(p, pid, name, ref, alias) != 0) return luaL_error(L, "not enough memory");
  lproc_pushterm(L, ref);
  return 1;
}

static int l_alias(lua_State *L) {
  proc *p = self(L);
  uint64_t ref = rt_make_ref(p->rt);
  mark(p, ref);
  if (link_alias(p, ref) != 0) return luaL_error(L, "not enough memory");
  lproc_pushterm(L, ref);
  return 1;
}

static int l_unalias(lua_State *L) {
  proc *p = self(L);
  lua_pushboolean(L, link_unalias(p, checkref(L, 1)));
  return 1;
}

/* A queued {"DOWN", ref, ...}? */
static int is_down_for(lua_State *L, int msg, uint64_t ref) {
  int yes;
  msg = lua_absindex(L, msg);
  if (!lua_istable(L, msg)) return 0;
  lua_rawgeti(L, msg, 1);
  lua_rawgeti(L, msg, 2);
  yes = lua_type(L, -2) == LUA_TSTRING && strcmp(lua_tostring(L, -2), "DOWN") == 0 &&
        toterm(L, -1) == ref;
  lua_pop(L, 2);
  return yes;
}

int lproc_flush_down(lua_State *L, proc *p, uint64_t ref) {
  int q;
  getq(L, p);
  q = lua_gettop(L);
  for (uint64_t i = p->qhead; i < p->qtail; i++) {
    int down = lua_rawgeti(L, q, (lua_Integer)i) == LUA_TTABLE && is_down_for(L, -1, ref);
    lua_pop(L, 1);
    if (down) {
      take(L, p, q, i);
      lua_pop(L, 1);
      return 1;
    }
  }
  lua_pop(L, 1);
  return 0;
}

static int l_demonitor(lua_State *L) {
  proc *p = self(L);
  uint64_t ref = checkref(L, 1);
  int flush = 0;
  if (!lua_isnoneornil(L, 2)) {
    luaL_checktype(L, 2, LUA_TTABLE);
    flush = optflag(L, 2, "flush");
  }
  int active = link_demonitor(p, ref, flush);
  if (flush) lproc_flush_down(L, p, ref);
  lua_pushboolean(L, active);
  return 1;
}

/* ================================================================ exits and flags */

static int l_exit(lua_State *L) {
  proc *p = self(L);
  const unsigned char *blob;
  size_t len;
  if (lua_gettop(L) < 2) {
    if (lua_isnoneornil(L, 1)) wrongtype(L, 1, "reason");
    lua_settop(L, 1);
    return lua_error(L);
  }
  uint64_t to = checkpid(L, 1);
  if (lua_isnil(L, 2)) wrongtype(L, 2, "reason");
  lua_settop(L, 2);
  blob = encode(L, 2, 1, "reason", &len);
  link_exit_signal(p, to, blob, len);
  if (to == p->pid) wait_check(L, p);   /* a signal to ourselves acts at once */
  lua_pushboolean(L, 1);
  return 1;
}

/* process.flag(name, bool) → the old value. "trap_exit"; "ordered_stop": when the runtime
** stops, this process is sent exit "shutdown" from <0.0.0> before the others are killed,
** after its linked parent if that has the flag too (gen_server sets it). */
static int l_flag(lua_State *L) {
  proc *p = self(L);
  const char *flag = luaL_checkstring(L, 1);
  int old;
  if (strcmp(flag, "trap_exit") == 0) {
    luaL_checktype(L, 2, LUA_TBOOLEAN);
    old = p->trap_exit;
    p->trap_exit = lua_toboolean(L, 2);
  } else if (strcmp(flag, "ordered_stop") == 0) {
    luaL_checktype(L, 2, LUA_TBOOLEAN);
    old = atomic_exchange(&p->ordered_stop, lua_toboolean(L, 2));
  } else {
    return luaL_argerror(L, 1, lua_pushfstring(L, "unknown flag '%s'", flag));
  }
  lua_pushboolean(L, old);
  return 1;
}

/* ================================================================ names */

static int l_register(lua_State *L) {
  proc *p = self(L);
  const char *name = checkname(L, 1);
  uint64_t pid = checkpid(L, 2);
  char buf[64];
  proc *target = proc_lookup(p->rt, pid);
  int st = target ? reg_add(p->rt, name, target) : REG_DEAD;
  if (target) proc_release(target);
  term_format(pid, buf, sizeof buf);
  switch (st) {
    case REG_OK: break;
    case REG_TAKEN:
      return luaL_argerror(L, 1, lua_pushfstring(L, "name '%s' is already registered", name));
    case REG_HASNAME:
      return luaL_argerror(L, 2, lua_pushfstring(L, "process %s already has a name", buf));
    case REG_DEAD:
      return luaL_argerror(L, 2, lua_pushfstring(L, "process %s is not alive", buf));
    default:
      return luaL_error(L, "not enough memory");
  }
  lua_pushboolean(L, 1);
  return 1;
}

static int l_unregister(lua_State *L) {
  proc *p = self(L);
  const char *name = checkname(L, 1);
  if (!reg_remove(p->rt, name))
    return luaL_argerror(L, 1, lua_pushfstring(L, "name '%s' is not registered", name));
  lua_pushboolean(L, 1);
  return 1;
}

static int l_whereis(lua_State *L) {
  uint64_t pid = reg_whereis(proc_of(L)->rt, checkname(L, 1));
  if (pid) lproc_pushterm(L, pid);
  else lua_pushnil(L);
  return 1;
}

typedef struct snap {
  reg_entry *v;
  size_t n;
} snap;

static int names_table(lua_State *L) {
  snap *s = lua_touserdata(L, 1);
  lua_createtable(L, (int)s->n, 0);
  for (size_t i = 0; i < s->n; i++) {
    lua_pushstring(L, s->v[i].name);
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  return 1;
}

static int l_registered(lua_State *L) {
  snap s;
  int st;
  s.v = reg_snapshot(proc_of(L)->rt, &s.n);
  if (s.v == NULL) return luaL_error(L, "not enough memory");
  lua_pushcfunction(L, names_table);
  lua_pushlightuserdata(L, &s);
  st = lua_pcall(L, 1, 1, 0);
  reg_snapshot_free(s.v, s.n);
  if (st != LUA_OK) return lua_error(L);
  return 1;
}

/* ================================================================ refs and timers */

uint64_t lproc_make_ref(proc *p) {
  uint64_t ref = rt_make_ref(p->rt);
  mark(p, ref);
  return ref;
}

static int l_make_ref(lua_State *L) {
  lproc_pushterm(L, lproc_make_ref(self(L)));
  return 1;
}

static int l_send_after(lua_State *L) {
  proc *p = self(L);
  double ms = luaL_checknumber(L, 1);
  uint64_t ref, dest = 0;
  char *name = NULL;
  const unsigned char *blob;
  size_t len;
  if (!(ms >= 0) || isinf(ms)) luaL_argerror(L, 1, "time must be a finite number >= 0");
  if (lua_type(L, 2) == LUA_TSTRING) checkname(L, 2);
  else dest = checkpid(L, 2);
  if (lua_isnoneornil(L, 3)) wrongtype(L, 3, "message");
  lua_settop(L, 3);
  blob = encode(L, 3, 1, "msg", &len);
  mbox_item *m = newitem(L, SIG_MSG, p->pid, 0, blob, len);
  if (dest == 0 && (name = strdup(lua_tostring(L, 2))) == NULL) {
    mbox_item_free(m);
    return luaL_error(L, "not enough memory");
  }
  ref = rt_make_ref(p->rt);
  if (timer_send(p->rt, ref, dest, name, m, ms) != 0) return luaL_error(L, "not enough memory");
  lproc_pushterm(L, ref);
  return 1;
}

static int push_left(lua_State *L, int found, double left) {
  if (found) lua_pushinteger(L, (lua_Integer)floor(left + 0.5));
  else lua_pushboolean(L, 0);
  return 1;
}

static int l_cancel_timer(lua_State *L) {
  double left;
  int found = timer_cancel(proc_of(L)->rt, checkref(L, 1), &left);
  return push_left(L, found, left);
}

static int l_read_timer(lua_State *L) {
  double left;
  int found = timer_read(proc_of(L)->rt, checkref(L, 1), &left);
  return push_left(L, found, left);
}

/* ================================================================ inspection */

static int l_alive(lua_State *L) {
  proc *q = proc_lookup(proc_of(L)->rt, checkpid(L, 1));
  lua_pushboolean(L, q && atomic_load(&q->state) != P_EXITING);
  if (q) proc_release(q);
  return 1;
}

/*
** process.info asks the process itself (an info signal, answered at its next reduction
** check or when it next runs), since only its own thread may look at its state.
** The answer comes as a message {ref, info}, received here like a call's reply.
*/
static int l_info(lua_State *L) {
  proc *p = self(L);
  uint64_t pid = checkpid(L, 1), ref = rt_make_ref(p->rt);
  mark(p, ref);   /* before asking: a reply to ourselves is queued at once */
  proc_deliver(p->rt, pid, newitem(L, SIG_INFO, p->pid, ref, NULL, 0));
  lua_settop(L, 0);
  lua_createtable(L, 2, 0);
  lproc_pushterm(L, ref);
  lua_rawseti(L, -2, 1);
  lproc_pushterm(L, TERM_ANY);
  lua_rawseti(L, -2, 2);
  return receive_from(L, p, -1, RECV_INFO);
}

static void add_pid(uint64_t pid, void *ud) {
  lua_State *L = ud;
  lproc_pushterm(L, pid);
  lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
}

static int l_list(lua_State *L) {
  proc *p = proc_of(L);
  lua_createtable(L, (int)ptab_count(p->rt), 0);
  ptab_each(p->rt, add_pid, L);
  return 1;
}

static int l_system_time(lua_State *L) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  lua_pushnumber(L, (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6);
  return 1;
}

static int l_monotonic(lua_State *L) {
  lua_pushnumber(L, (double)timer_now() / 1e6);
  return 1;
}

/* process.topid("<0.42.0>") (also "0.42.0") → the pid with that printed form. */
/* Reads a decimal number of at most 10 digits at *s into *v; 0 if there is none. */
static int read_number(const char **s, uint64_t *v) {
  const char *p = *s;
  *v = 0;
  while (*p >= '0' && *p <= '9' && p - *s < 10) *v = *v * 10 + (uint64_t)(*p++ - '0');
  if (p == *s || (*p >= '0' && *p <= '9')) return 0;
  *s = p;
  return 1;
}

/* process.topid("<0.42.0>" or "0.42.0") → the pid with that text (alive or not). */
static int l_topid(lua_State *L) {
  const char *s = luaL_checkstring(L, 1);
  int angle = *s == '<';
  uint64_t node, idx, gen;
  s += angle;
  if (!read_number(&s, &node) || *s++ != '.' || !read_number(&s, &idx) || *s++ != '.' ||
      !read_number(&s, &gen) || (angle && *s++ != '>') || *s != '\0')
    return luaL_argerror(L, 1, "pid text like \"<0.42.0>\" expected");
  if (node != 0 || idx > PID_IDXMASK || gen > UINT32_MAX)
    return luaL_argerror(L, 1, "no such pid on this node");
  lproc_pushterm(L, pid_make((uint32_t)idx, (uint32_t)gen));
  return 1;
}

static int l_schedulers(lua_State *L) {
  lua_pushinteger(L, proc_of(L)->rt->nsched);
  return 1;
}

static int l_is_pid(lua_State *L) {
  lua_pushboolean(L, term_ispid(toterm(L, 1)));
  return 1;
}

static int l_is_ref(lua_State *L) {
  lua_pushboolean(L, term_isref(toterm(L, 1)));
  return 1;
}

static int l_any_of(lua_State *L) {
  int n = lua_gettop(L);
  for (int i = 1; i <= n; i++) luaL_checktype(L, i, LUA_TTABLE);
  lua_createtable(L, n, 0);
  for (int i = 1; i <= n; i++) {
    lua_pushvalue(L, i);
    lua_rawseti(L, -2, i);
  }
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &ANYOF_KEY) == LUA_TNIL) {   /* made on first use */
    lua_pop(L, 1);
    lua_createtable(L, 0, 1);
    lua_pushliteral(L, "any_of");
    lua_setfield(L, -2, "__name");
    lua_pushvalue(L, -1);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &ANYOF_KEY);
  }
  lua_setmetatable(L, -2);
  return 1;
}

/* ================================================================ terms */

static int term_tostring(lua_State *L) {
  char buf[64];
  uint64_t v = toterm(L, 1);
  if (v == 0) lua_pushfstring(L, "userdata: %p", lua_touserdata(L, 1));
  else lua_pushlstring(L, buf, (size_t)term_format(v, buf, sizeof buf));
  return 1;
}

static int term_concat(lua_State *L) {
  luaL_tolstring(L, 1, NULL);
  luaL_tolstring(L, 2, NULL);
  lua_concat(L, 2);
  return 1;
}

static int term_lt(lua_State *L) {
  uint64_t a = toterm(L, 1), b = toterm(L, 2);
  if (a == 0 || b == 0) return luaL_error(L, "attempt to compare two userdata values");
  lua_pushboolean(L, a < b);
  return 1;
}

static int term_le(lua_State *L) {
  uint64_t a = toterm(L, 1), b = toterm(L, 2);
  if (a == 0 || b == 0) return luaL_error(L, "attempt to compare two userdata values");
  lua_pushboolean(L, a <= b);
  return 1;
}

void lproc_open_terms(lua_State *L) {
  static const luaL_Reg mt[] = {{"__tostring", term_tostring}, {"__concat", term_concat},
                                {"__lt", term_lt}, {"__le", term_le}, {NULL, NULL}};
  lua_pushlightuserdata(L, NULL);
  luaL_newlib(L, mt);
  lua_setmetatable(L, -2);
  lua_pop(L, 1);
}

/* ================================================================ the library */

/*
** The library's functions enter the table the first time each is looked up (__index), so
** a process pays only for the ones it uses (the whole table would be ~3 KB of a fresh
** process's ~10); pairs on it first puts them all in.
*/
static const luaL_Reg FNS[] = {
    {"spawn", l_spawn}, {"spawn_link", l_spawn_link}, {"spawn_monitor", l_spawn_monitor},
    {"spawn_opt", l_spawn_opt}, {"self", l_self}, {"send", l_send},
    {"receive", l_receive}, {"sleep", l_sleep}, {"yield", l_yield}, {"link", l_link},
    {"unlink", l_unlink}, {"monitor", l_monitor}, {"demonitor", l_demonitor},
    {"exit", l_exit}, {"flag", l_flag}, {"register", l_register},
    {"unregister", l_unregister}, {"whereis", l_whereis}, {"registered", l_registered},
    {"make_ref", l_make_ref}, {"send_after", l_send_after},
    {"cancel_timer", l_cancel_timer}, {"read_timer", l_read_timer}, {"alive", l_alive},
    {"info", l_info}, {"list", l_list}, {"monotonic", l_monotonic},
    {"is_pid", l_is_pid}, {"is_ref", l_is_ref}, {"any_of", l_any_of}, {"alias", l_alias},
    {"unalias", l_unalias}, {"schedulers", l_schedulers}, {"system_time", l_system_time},
    {"topid", l_topid},
    {NULL, NULL}};

static int lib_index(lua_State *L) {
  const char *k;
  if (lua_type(L, 2) != LUA_TSTRING) return 0;   /* (lua_tostring would convert a number key) */
  k = lua_tostring(L, 2);
  for (const luaL_Reg *f = FNS; f->name; f++)
    if (strcmp(k, f->name) == 0) {
      lua_pushcfunction(L, f->func);
      lua_pushvalue(L, -1);
      lua_setfield(L, 1, k);
      return 1;
    }
  return 0;
}

static int lib_pairs(lua_State *L) {
  for (const luaL_Reg *f = FNS; f->name; f++)
    if (lua_getfield(L, 1, f->name) != LUA_TNIL) lua_pop(L, 1);
  lenv_push_next(L);
  lua_pushvalue(L, 1);
  lua_pushnil(L);
  return 3;
}

int luaopen_process(lua_State *L) {
  lua_createtable(L, 0, 8);
  lproc_pushterm(L, TERM_ANY);
  lua_setfield(L, -2, "ANY");
  lua_createtable(L, 0, 2);
  lua_pushcfunction(L, lib_index);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, lib_pairs);
  lua_setfield(L, -2, "__pairs");
  lua_setmetatable(L, -2);
  return 1;
}
