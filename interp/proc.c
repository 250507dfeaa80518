/* proc.c — processes: the table of live processes, spawning, one run step, and death. */
#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <lauxlib.h>
#include <lua.h>

#include "code.h"
#include "hostbox.h"
#include "lenv.h"
#include "link.h"
#include "lproc.h"
#include "mbconf.h"
#include "msg.h"
#include "net.h"
#include "pid.h"
#include "proc.h"
#include "reg.h"
#include "rt.h"
#include "sched.h"
#include "timer.h"

/* ================================================================ the process table */

#define NCHUNKS ((1u << MB_PID_IDX_BITS) / MB_PTAB_CHUNK)
#define MAX_IDX ((1u << MB_PID_IDX_BITS) - 1)
/* Freed slots are reused only once this many wait, so pids keep growing like Erlang's. */
#define REUSE_AFTER 4096

typedef struct slot {
  _Atomic(proc *) p;
  uint32_t gen;            /* under the lock */
} slot;

struct ptab {
  _Atomic(slot *) chunks[NCHUNKS];
  pthread_mutex_t lock;    /* guards next, the free ring, gens, pool */
  uint32_t next;           /* first index never used */
  uint32_t *ring;          /* freed indices, oldest first */
  size_t rhead, rlen, rcap;
  proc *pool;              /* dead procs with no references left */
  _Atomic size_t live;
};

int ptab_init(mb_runtime *rt) {
  ptab *t = calloc(1, sizeof *t);
  if (t == NULL) return MB_ENOMEM;
  pthread_mutex_init(&t->lock, NULL);
  t->next = 1;   /* <0.0.0> stands for the runtime itself */
  rt->procs = t;
  return 0;
}

static slot *slot_at(ptab *t, uint32_t idx) {
  slot *c = atomic_load_explicit(&t->chunks[idx / MB_PTAB_CHUNK], memory_order_acquire);
  return c ? &c[idx % MB_PTAB_CHUNK] : NULL;
}

static int ring_push(ptab *t, uint32_t idx) {
  if (t->rlen == t->rcap) {
    size_t cap = t->rcap ? t->rcap * 2 : 1024;
    uint32_t *r = malloc(cap * sizeof *r);
    if (r == NULL) return MB_ENOMEM;
    for (size_t i = 0; i < t->rlen; i++) r[i] = t->ring[(t->rhead + i) % t->rcap];
    free(t->ring);
    t->ring = r;
    t->rcap = cap;
    t->rhead = 0;
  }
  t->ring[(t->rhead + t->rlen++) % t->rcap] = idx;
  return 0;
}

/* A free slot index (lock held); 0 if the table is full. */
static uint32_t slot_alloc(ptab *t) {
  uint32_t idx;
  if (t->rlen > 0 && (t->rlen >= REUSE_AFTER || t->next > MAX_IDX)) {
    idx = t->ring[t->rhead];
    t->rhead = (t->rhead + 1) % t->rcap;
    t->rlen--;
    return idx;
  }
  if (t->next > MAX_IDX) return 0;
  idx = t->next;
  if (slot_at(t, idx) == NULL) {
    slot *c = calloc(MB_PTAB_CHUNK, sizeof *c);
    if (c == NULL) return 0;
    atomic_store_explicit(&t->chunks[idx / MB_PTAB_CHUNK], c, memory_order_release);
  }
  t->next++;
  return idx;
}

/* A cleared proc with a fresh pid and one reference (the table's); not yet visible. */
static proc *proc_new(mb_runtime *rt) {
  ptab *t = rt->procs;
  proc *p;
  uint32_t idx, gen;
  pthread_mutex_lock(&t->lock);
  idx = slot_alloc(t);
  p = t->pool;
  if (idx && p) t->pool = p->pool_next;
  gen = idx ? slot_at(t, idx)->gen : 0;
  pthread_mutex_unlock(&t->lock);
  if (idx == 0) return NULL;
  if (p == NULL && (p = calloc(1, sizeof *p)) == NULL) {
    pthread_mutex_lock(&t->lock);
    ring_push(t, idx);
    pthread_mutex_unlock(&t->lock);
    return NULL;
  }
  memset((char *)p + offsetof(proc, state), 0, sizeof *p - offsetof(proc, state));
  p->rt = rt;
  mbox_init(&p->box);
  atomic_store(&p->pid, pid_make(idx, gen));
  atomic_store_explicit(&p->refs, 1, memory_order_release);
  return p;
}

static void publish(proc *p) {
  slot *s = slot_at(p->rt->procs, pid_idx(p->pid));
  atomic_store_explicit(&s->p, p, memory_order_release);
  atomic_fetch_add(&p->rt->procs->live, 1);
}

/* Take p out of the table: its pid stops resolving and the slot can be reused. */
static void unpublish(proc *p) {
  ptab *t = p->rt->procs;
  uint32_t idx = pid_idx(p->pid);
  pthread_mutex_lock(&t->lock);
  slot *s = slot_at(t, idx);
  atomic_store_explicit(&s->p, NULL, memory_order_release);
  s->gen++;
  ring_push(t, idx);
  pthread_mutex_unlock(&t->lock);
  atomic_fetch_sub(&t->live, 1);
}

proc *proc_lookup(mb_runtime *rt, uint64_t pid) {
  slot *s;
  proc *p;
  int r;
  if (!term_ispid(pid) || (s = slot_at(rt->procs, pid_idx(pid))) == NULL) return NULL;
  p = atomic_load_explicit(&s->p, memory_order_acquire);
  if (p == NULL) return NULL;
  r = atomic_load(&p->refs);
  do {
    if (r == 0) return NULL;
  } while (!atomic_compare_exchange_weak(&p->refs, &r, r + 1));
  if (atomic_load(&p->pid) != pid) {
    proc_release(p);
    return NULL;
  }
  return p;
}

void proc_release(proc *p) {
  ptab *t = p->rt->procs;
  if (atomic_fetch_sub(&p->refs, 1) != 1) return;
  if (p->host) {   /* nobody can reach it any more: not a receiver, not a deliverer */
    hostbox_free(p->host);
    p->host = NULL;
  }
  pthread_mutex_lock(&t->lock);
  p->pool_next = t->pool;
  t->pool = p;
  pthread_mutex_unlock(&t->lock);
}

size_t ptab_count(mb_runtime *rt) { return atomic_load(&rt->procs->live); }

void ptab_each(mb_runtime *rt, void (*f)(uint64_t, void *), void *ud) {
  ptab *t = rt->procs;
  uint32_t end;
  pthread_mutex_lock(&t->lock);
  end = t->next;
  pthread_mutex_unlock(&t->lock);
  for (uint32_t idx = 1; idx < end; idx++) {
    slot *s = slot_at(t, idx);
    proc *p = s ? atomic_load_explicit(&s->p, memory_order_acquire) : NULL;
    uint64_t pid = p ? atomic_load(&p->pid) : 0;
    if (pid && pid_idx(pid) == idx) f(pid, ud);
  }
}

static void proc_destroy(proc *p);

void ptab_free(mb_runtime *rt) {
  ptab *t = rt->procs;
  if (t == NULL) return;
  for (uint32_t i = 0; i < NCHUNKS; i++) {
    slot *c = atomic_load(&t->chunks[i]);
    if (c == NULL) continue;
    for (uint32_t j = 0; j < MB_PTAB_CHUNK; j++) {
      proc *p = atomic_load(&c[j].p);
      if (p) proc_destroy(p);
    }
    free(c);
  }
  while (t->pool) {
    proc *p = t->pool;
    t->pool = p->pool_next;
    free(p);
  }
  free(t->ring);
  pthread_mutex_destroy(&t->lock);
  free(t);
  rt->procs = NULL;
}

/* ================================================================ exit reasons */

/* The reason of last resort, when even a few bytes cannot be allocated. */
static const unsigned char ENOMEM_REASON[] = {1, MSG_STR, 6, 'e', 'n', 'o', 'm', 'e', 'm'};

static void free_reason(proc *p) {
  if (p->reason != ENOMEM_REASON) free(p->reason);
  p->reason = NULL;
  p->reasonlen = 0;
}

void proc_set_exit(proc *p, const unsigned char *reason, size_t len, int killed) {
  if (p->exiting) return;
  p->exiting = 1;
  p->killed = killed;
  p->reason = malloc(len);
  if (p->reason) {
    memcpy(p->reason, reason, len);
    p->reasonlen = len;
  } else {
    p->reason = (unsigned char *)ENOMEM_REASON;
    p->reasonlen = sizeof ENOMEM_REASON;
  }
}

void proc_set_exit_string(proc *p, const char *reason, int killed) {
  unsigned char buf[64];
  size_t n = strlen(reason);
  if (n > sizeof buf - 3) n = sizeof buf - 3;
  buf[0] = 1;
  buf[1] = MSG_STR;
  buf[2] = (unsigned char)n;
  memcpy(buf + 3, reason, n);
  proc_set_exit(p, buf, n + 3, killed);
}

int proc_raise_interrupted(lua_State *L, proc *p) {
  p->interrupted = 0;
  lua_pushliteral(L, "interrupted!");
  return lua_error(L);
}

int proc_raise_killed(lua_State *L) {
  lua_pushlightuserdata(L, (void *)(uintptr_t)TERM_KILLED);
  return lua_error(L);
}

int proc_protect(proc *p, lua_CFunction fn, void *ud) {
  lua_State *L = p->L;
  int top = lua_gettop(L), st;
  lua_pushcfunction(L, fn);
  lua_pushlightuserdata(L, ud);
  st = lua_pcall(L, 1, 0, 0);
  lua_settop(L, top);
  return st;
}

/* ================================================================ delivery */

void proc_wake(proc *p, int also_sleeping) {
  int s = atomic_load(&p->state);
  while (s == P_WAITING || (also_sleeping && s == P_SLEEPING)) {
    if (atomic_compare_exchange_weak(&p->state, &s, P_RUNNABLE)) {
      sched_enqueue(p);
      return;
    }
  }
}

/* Signals the target must act on now; the others (link, unlink, monitor, demonitor) only
** change its bookkeeping and wait in its inbox until it next runs. */
static int urgent(int kind) {
  return kind == SIG_EXIT || kind == SIG_LINKEXIT || kind == SIG_DOWN || kind == SIG_INFO ||
         kind == SIG_INTERRUPT || kind == SIG_CODECHECK;
}

/*
** Push, then look at the state: the owner stores its waiting state, then looks at the
** mailbox (both sequentially consistent), so one of the two always sees the other.
** An urgent signal also raises sigpending, after the push, so a busy process notices it at
** its next reduction check, and wakes a sleeping one.
*/
void proc_deliver(mb_runtime *rt, uint64_t pid, mbox_item *m) {
  proc *p;
  int kind;
  if (m == NULL) return;
  kind = m->kind;
  p = proc_lookup(rt, pid);
  if (p && mbox_push(&p->box, m) == 0) {
    if (p->host) {
      hostbox_arrived(p);
    } else if (kind == SIG_MSG) {
      proc_wake(p, 0);
    } else if (urgent(kind)) {
      atomic_store(&p->sigpending, 1);
      proc_wake(p, 1);
    }
    proc_release(p);
    return;
  }
  if (p) proc_release(p);
  link_dead_target(rt, pid, m);
}

/* ================================================================ spawning */

void spawn_req_free(spawn_req *req) {
  if (req == NULL) return;
  free(req->blob);
  free(req->what);
  free(req->chunkname);
  free(req->path);
  free(req->cpath);
  free(req);
}

static int spawn_links(proc *parent, proc *p, spawn_opts *o) {
  if (o->link && parent && link_add_spawn_link(parent, p) != 0) return MB_ENOMEM;
  if (o->monitor) {
    o->monitor_ref = rt_make_ref(p->rt);
    if (link_add_spawn_monitor(parent, o->monitor, p, o->monitor_ref) != 0) return MB_ENOMEM;
  }
  return 0;
}

int proc_spawn(mb_runtime *rt, proc *parent, spawn_req *req, spawn_opts *o, uint64_t *pid) {
  proc *p;
  int st;
  if (atomic_load(&rt->state) >= RT_STOPPED || (p = proc_new(rt)) == NULL) {
    spawn_req_free(req);
    return atomic_load(&rt->state) >= RT_STOPPED ? MB_ESTOPPED : MB_ENOMEM;
  }
  p->boot = req;
  p->parent = parent && o->link ? parent->pid : 0;
  p->trap_exit = o->trap_exit;
  p->max_heap = o->max_heap;
  p->status_hint = P_RUNNABLE;
  atomic_store(&p->home, (int)(pid_idx(p->pid) % (uint32_t)rt->nsched));
  publish(p);
  st = o->name ? reg_add(rt, o->name, p) : REG_OK;
  if (st == REG_OK) st = spawn_links(parent, p, o);
  if (st != REG_OK) {
    unpublish(p);
    link_free(p);
    reg_remove_proc(rt, p);
    spawn_req_free(p->boot);
    proc_release(p);
    return st == REG_TAKEN ? MB_ENAME : MB_ENOMEM;
  }
  if (o->main) {
    uint64_t none = 0;
    atomic_compare_exchange_strong(&rt->main_pid, &none, p->pid);
  }
  rt_proc_started(rt);
  *pid = p->pid;
  atomic_store(&p->state, P_RUNNABLE);
  sched_enqueue(p);
  return 0;
}

int proc_new_host(mb_runtime *rt, struct hostbox *hb, uint64_t *pid) {
  proc *p;
  if (atomic_load(&rt->state) >= RT_STOPPED || (p = proc_new(rt)) == NULL)
    return atomic_load(&rt->state) >= RT_STOPPED ? MB_ESTOPPED : MB_ENOMEM;
  p->host = hb;
  p->trap_exit = 1;
  p->status_hint = P_WAITING;
  p->initial_call = strdup("mb_mailbox_open");
  atomic_store(&p->state, P_WAITING);
  rt_proc_started(rt);
  *pid = p->pid;
  publish(p);
  return 0;
}

/* ================================================================ first run */

static char *function_site(lua_State *L, int idx) {
  lua_Debug ar;
  char buf[LUA_IDSIZE + 32];
  lua_pushvalue(L, idx);
  if (!lua_getinfo(L, ">S", &ar)) return NULL;
  snprintf(buf, sizeof buf, "%s:%d", ar.short_src, ar.linedefined);
  return strdup(buf);
}

/* Push module mod's function fn ("mod.fn"). */
static void push_mfa(lua_State *L, const char *what) {
  const char *dot = strrchr(what, '.');
  lua_getglobal(L, "require");
  lua_pushlstring(L, what, (size_t)(dot - what));
  lua_call(L, 1, 1);
  if (!lua_istable(L, -1)) luaL_error(L, "module '%s' is not a table", lua_tostring(L, -1));
  if (lua_getfield(L, -1, dot + 1) != LUA_TFUNCTION)
    luaL_error(L, "%s is not a function", what);
  lua_remove(L, -2);
}

static void push_args(lua_State *L, const spawn_req *req) {
  if (msg_decode(L, req->blob, req->len) < 0) luaL_error(L, "malformed spawn request");
}

/* Protected: put the body's function and arguments on p->body. */
static int boot_body(lua_State *L) {
  proc *p = proc_of(L);
  spawn_req *req = p->boot;
  int base = lua_gettop(L), n;
  switch (req->kind) {
    case SPAWN_FUNC: push_args(L, req); break;
    case SPAWN_MFA: push_mfa(L, req->what); push_args(L, req); break;
    case SPAWN_FILE:
      if (luaL_loadfile(L, req->what) != LUA_OK) return lua_error(L);
      break;
    case SPAWN_STRING:
      if (luaL_loadbuffer(L, req->what, strlen(req->what), req->chunkname) != LUA_OK)
        return lua_error(L);
      break;
  }
  n = lua_gettop(L) - base;
  if (n < 1 || !lua_isfunction(L, base + 1)) return luaL_error(L, "malformed spawn request");
  p->initial_call = req->kind == SPAWN_MFA ? strdup(req->what) : function_site(L, base + 1);
  if (!lua_checkstack(p->body, n)) return luaL_error(L, "too many arguments");
  lua_xmove(L, p->body, n);
  p->nargs = n - 1;
  return 0;
}

static int boot_error(lua_State *L);

/* Create the state and the body. On failure the exit reason is set; returns 0. */
static int boot(proc *p) {
  int st = lenv_open(p);
  if (st != 0) {
    proc_set_exit_string(p, p->over_heap ? "max_heap" : "enomem", 1);
    return 0;
  }
  lua_pushcfunction(p->L, boot_body);
  st = lua_pcall(p->L, 0, 0, 0);
  spawn_req_free(p->boot);
  p->boot = NULL;
  if (st != LUA_OK) {
    lua_xmove(p->L, p->body, 1);   /* the error value, where boot_error looks for it */
    if (proc_protect(p, boot_error, NULL) != LUA_OK) proc_set_exit_string(p, "enomem", 0);
    return 0;
  }
  return 1;
}

/* ================================================================ crashes */

static void push_now(lua_State *L) {
  struct timespec ts;
  struct tm tm;
  char buf[64];
  clock_gettime(CLOCK_REALTIME, &ts);
  localtime_r(&ts.tv_sec, &tm);
  size_t n = strftime(buf, sizeof buf, "%d-%b-%Y::%H:%M:%S", &tm);
  snprintf(buf + n, sizeof buf - n, ".%03d", (int)(ts.tv_nsec / 1000000));
  lua_pushstring(L, buf);
}

static void push_reason_text(lua_State *L, proc *p) {
  msg_buf b;
  msg_buf_init(&b);
  msg_format(p->reason, p->reasonlen, &b);
  lua_pushlstring(L, b.p ? (const char *)b.p : "?", b.len);
  msg_buf_free(&b);
}

/* Protected: require("logger").crash_report{pid=, name=, initial_call=, reason=, traceback=}. */
static int logger_crash(lua_State *L) {
  proc *p = proc_of(L);
  int with_trace = (int)lua_toboolean(L, 1);
  char name[256];
  lua_getglobal(L, "require");
  lua_pushliteral(L, "logger");
  lua_call(L, 1, 1);
  lua_getfield(L, -1, "crash_report");
  lua_createtable(L, 0, 5);
  lproc_pushterm(L, p->pid);
  lua_setfield(L, -2, "pid");
  if (reg_name_of(p->rt, p, name, sizeof name)) {
    lua_pushstring(L, name);
    lua_setfield(L, -2, "name");
  }
  lua_pushstring(L, p->initial_call ? p->initial_call : "?");
  lua_setfield(L, -2, "initial_call");
  if (msg_decode(L, p->reason, p->reasonlen) == 1) lua_setfield(L, -2, "reason");
  if (with_trace) {
    luaL_traceback(L, p->body, NULL, 0);
    lua_setfield(L, -2, "traceback");
  }
  lua_call(L, 1, 0);
  return 0;
}

/*
** A crash report on stderr, through the logger module (its format and level); if that
** cannot be loaded or fails, in C, in one write:
**   =CRASH REPORT==== 21-Nov-2026::07:42:01.123 ===
**     crasher:
**       pid: <0.5.0>
**       registered_name: worker
**       initial_call: x.lua:10
**       reason: "x.lua:1: boom"
**     stack traceback: ...
*/
static void crash_report(lua_State *L, proc *p, int with_trace) {
  char pid[64], name[256];
  luaL_Buffer b;
  lua_pushcfunction(L, logger_crash);
  lua_pushboolean(L, with_trace);
  if (lua_pcall(L, 1, 0, 0) == LUA_OK) return;
  lua_pop(L, 1);
  term_format(p->pid, pid, sizeof pid);
  if (!reg_name_of(p->rt, p, name, sizeof name)) strcpy(name, "[]");
  luaL_buffinit(L, &b);
  luaL_addstring(&b, "=CRASH REPORT==== ");
  push_now(L);
  luaL_addvalue(&b);
  lua_pushfstring(L, " ===\n  crasher:\n    pid: %s\n    registered_name: %s\n"
                  "    initial_call: %s\n    reason: ", pid, name,
                  p->initial_call ? p->initial_call : "?");
  luaL_addvalue(&b);
  push_reason_text(L, p);
  luaL_addvalue(&b);
  luaL_addchar(&b, '\n');
  if (with_trace) {
    luaL_addstring(&b, "  ");
    luaL_traceback(L, p->body, NULL, 0);
    luaL_addvalue(&b);
    luaL_addchar(&b, '\n');
  }
  luaL_pushresult(&b);
  rt_write(stderr, lua_tostring(L, -1), lua_rawlen(L, -1));
}

/* The main process fails as `lua` does: "progname: message" and the traceback. */
static void main_error(lua_State *L, proc *p, int ev, int with_trace) {
  const char *msg = lua_tostring(L, ev);
  if (msg == NULL) {
    if (luaL_callmeta(L, ev, "__tostring") && lua_type(L, -1) == LUA_TSTRING) {
      msg = lua_tostring(L, -1);
      with_trace = 0;   /* lua prints such an object's text alone */
    } else {
      msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, ev));
    }
  }
  if (with_trace) {
    luaL_traceback(L, p->body, msg, 0);
    msg = lua_tostring(L, -1);
    const char *cli = strstr(msg, "\n\t(...tail calls...)\n\trepl/cli.lua:");
    if (cli == NULL) cli = strstr(msg, "\n\trepl/cli.lua:");
    if (cli) {   /* end where lua's traceback ends: the command's own frames are noise */
      lua_pushlstring(L, msg, (size_t)(cli - msg));
      lua_pushliteral(L, "\n\t[C]: in ?");
      lua_concat(L, 2);
      msg = lua_tostring(L, -1);
    }
  }
  lua_pushfstring(L, "%s: %s\n", p->rt->progname, msg);
  rt_write(stderr, lua_tostring(L, -1), lua_rawlen(L, -1));
}

/* normal, shutdown and {"shutdown", x} end a process quietly. */
static int quiet_reason(lua_State *L, int ev) {
  const char *s = NULL;
  if (lua_type(L, ev) == LUA_TSTRING) s = lua_tostring(L, ev);
  else if (lua_type(L, ev) == LUA_TTABLE && lua_rawgeti(L, ev, 1) == LUA_TSTRING)
    return strcmp(lua_tostring(L, -1), "shutdown") == 0;
  return s && (strcmp(s, "normal") == 0 || strcmp(s, "shutdown") == 0);
}

/* The value at ev becomes the exit reason; an uncopyable one is replaced by its text. */
static void reason_from_value(lua_State *L, proc *p, int ev) {
  const unsigned char *blob;
  size_t len;
  msg_enc *e = sched_encoder();
  if (msg_encode(L, ev, 1, e, "reason", &blob, &len) != 0) {
    luaL_tolstring(L, ev, NULL);
    if (msg_encode(L, lua_gettop(L), 1, e, "reason", &blob, &len) != 0) lua_error(L);
  }
  proc_set_exit(p, blob, len, 0);
}

/* Protected: the body raised the value on top of p->body (or boot did). */
static int failed(lua_State *L, int with_trace) {
  proc *p = proc_of(L);
  int ev;
  lua_xmove(p->body, L, 1);
  ev = lua_gettop(L);
  if (!p->exiting) reason_from_value(L, p, ev);
  if (atomic_load(&p->rt->main_pid) == p->pid) {
    if (!p->killed) main_error(L, p, ev, with_trace);
  } else if (p->over_heap || (!p->killed && !quiet_reason(L, ev))) {
    crash_report(L, p, with_trace);
  }
  return 0;
}

static int body_error(lua_State *L) { return failed(L, 1); }
static int boot_error(lua_State *L) { return failed(L, 0); }

static int heap_report(lua_State *L) {
  crash_report(L, proc_of(L), 1);
  return 0;
}

/* ================================================================ death */

static void main_ended(mb_runtime *rt, proc *p) {
  int status = msg_is_string(p->reason, p->reasonlen, "normal") ? 0 : 1;
  if (status != 0 && p->killed && !rt_halting(rt) && !rt->no_halt) {
    msg_buf b;
    msg_buf_init(&b);
    msg_format(p->reason, p->reasonlen, &b);
    fprintf(stderr, "%s: main process exited: %.*s\n", rt->progname, (int)b.len,
            b.p ? (const char *)b.p : "?");
    msg_buf_free(&b);
  }
  if (!rt->no_halt) rt_halt(rt, status);
}

/* Everything a dead proc still holds, apart from its slot and reference. */
static void proc_destroy(proc *p) {
  if (p->L) lua_close(p->L);
  p->L = p->body = p->cur = NULL;
  spawn_req_free(p->boot);
  p->boot = NULL;
  free(p->initial_call);
  p->initial_call = NULL;
  mbox_free_list(p->box.head);
  p->box.head = p->box.tail = NULL;
  link_free(p);
  free_reason(p);
}

/*
** The order matters: the mailbox closes first (later signals see a dead process and get
** noproc answers), then the pid stops resolving, the state goes (finalizers run, resources
** are released), and only then do links and monitors hear of it, so whoever gets a DOWN
** finds the process gone.
*/
void proc_unlist(proc *p) {
  if (!p->exiting) proc_set_exit_string(p, "normal", 0);
  atomic_store(&p->state, P_EXITING);
  reg_remove_proc(p->rt, p);
  if (p->wait_timer) timer_cancel(p->rt, p->wait_timer, NULL);
  link_close(p);
  unpublish(p);
}

void proc_bury(proc *p) {
  mb_runtime *rt = p->rt;
  link_notify(p);
  code_forget(p);
  if (atomic_load(&rt->main_pid) == p->pid) main_ended(rt, p);
  proc_destroy(p);
  rt_proc_ended(rt);
  proc_release(p);
}

static void finish(proc *p) {
  proc_unlist(p);
  if (atomic_load(&p->net_owner)) net_proc_ended(p->rt, p->pid);   /* after unpublish: see net.h */
  if (p->L) lua_close(p->L);
  p->L = p->body = p->cur = NULL;
  proc_bury(p);
}

/* ================================================================ running */

/* Wait, unless what we wait for came meanwhile (see proc_deliver). */
static void park(proc *p, int st) {
  int timed = p->wait_timer != 0;   /* read before the store: p may run elsewhere after it */
  p->status_hint = st;
  atomic_store(&p->state, st);
  if (atomic_load(&p->sigpending) ||
      (timed && atomic_load(&p->tmo_fired) == atomic_load(&p->wait_gen)) ||
      (st == P_WAITING && mbox_pending(&p->box))) {
    int expected = st;
    if (atomic_compare_exchange_strong(&p->state, &expected, P_RUNNABLE)) sched_enqueue(p);
  }
}

static void after_yield(proc *p) {
  switch (p->yield) {
    case Y_WAIT: park(p, P_WAITING); break;
    case Y_SLEEP: park(p, P_SLEEPING); break;
    case Y_EXIT:
      if (p->over_heap) proc_protect(p, heap_report, NULL);
      finish(p);
      break;
    default:   /* preempted (or a C module yielded the body itself) */
      p->status_hint = P_RUNNABLE;
      atomic_store(&p->state, P_RUNNABLE);
      sched_enqueue(p);
      break;
  }
}

void proc_run(proc *p) {
  int st, nres = 0;
  atomic_store(&p->state, P_RUNNING);
  if (p->boot && !boot(p)) {
    finish(p);
    return;
  }
  if (atomic_load(&p->sigpending)) link_signals(p);
  p->status_hint = P_RUNNING;
  if (p->exiting) {
    finish(p);
    return;
  }
  p->reds++;   /* being scheduled costs one, as in Erlang */
  p->slice_end = p->reds + MB_SLICE;
  p->yield = Y_NONE;
  st = lua_resume(p->body, NULL, p->nargs, &nres);
  p->nargs = 0;
  if (st == LUA_YIELD) {
    lua_pop(p->body, nres);
    after_yield(p);
    return;
  }
  if (st != LUA_OK && proc_protect(p, body_error, NULL) != LUA_OK)
    proc_set_exit_string(p, p->over_heap ? "max_heap" : "enomem", 0);
  finish(p);
}
