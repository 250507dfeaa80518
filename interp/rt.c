/* rt.c — the runtime object and the public C API (mb_*). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <lauxlib.h>

#include "code.h"
#include "hostbox.h"
#include "link.h"
#include "mbconf.h"
#include "msg.h"
#include "net.h"
#include "pid.h"
#include "proc.h"
#include "reg.h"
#include "rt.h"
#include "sched.h"
#include "timer.h"

const char *mb_strerror(int err) {
  switch (err) {
    case 0: return "no error";
#define MB_TEXT_(name, value, text) case value: return text;
    MB_ERRORS(MB_TEXT_)
#undef MB_TEXT_
    default: return "unknown error";
  }
}

void mb_config_default(mb_config *cfg) {
  memset(cfg, 0, sizeof *cfg);
}

/* ================================================================ internals */

uint64_t rt_make_ref(mb_runtime *rt) {
  return ref_make(atomic_fetch_add_explicit(&rt->next_ref, 1, memory_order_relaxed));
}

void rt_halt(mb_runtime *rt, int status) {
  pthread_mutex_lock(&rt->life_lock);
  if (!rt->halted) {
    rt->halted = 1;
    rt->halt_status = status;
    pthread_cond_broadcast(&rt->life_cond);
  }
  pthread_mutex_unlock(&rt->life_lock);
}

int rt_halting(mb_runtime *rt) {
  int h;
  pthread_mutex_lock(&rt->life_lock);
  h = rt->halted;
  pthread_mutex_unlock(&rt->life_lock);
  return h || atomic_load(&rt->state) >= RT_STOPPING;
}

void rt_proc_started(mb_runtime *rt) {
  pthread_mutex_lock(&rt->life_lock);
  rt->nlive++;
  pthread_mutex_unlock(&rt->life_lock);
}

void rt_proc_ended(mb_runtime *rt) {
  pthread_mutex_lock(&rt->life_lock);
  if (--rt->nlive == 0) pthread_cond_broadcast(&rt->life_cond);
  pthread_mutex_unlock(&rt->life_lock);
}

/* 0 if the runtime runs; else why a call cannot be made now. */
static int running(mb_runtime *rt) {
  switch (atomic_load(&rt->state)) {
    case RT_RUNNING: return 0;
    case RT_NEW: return MB_ENOTSTARTED;
    default: return MB_ESTOPPED;
  }
}

void rt_write(FILE *f, const char *s, size_t len) {
  flockfile(f);
  fwrite(s, 1, len, f);
  fflush(f);
  funlockfile(f);
}

/* ================================================================ life */

static char *dup_opt(const char *s) { return s ? strdup(s) : NULL; }

mb_runtime *mb_new(const mb_config *cfg) {
  mb_config dflt;
  mb_runtime *rt;
  if (cfg == NULL) {
    mb_config_default(&dflt);
    cfg = &dflt;
  }
  if (cfg->schedulers < 0 || cfg->schedulers > 1024 || cfg->stop_timeout_ms < -1) {
    errno = EINVAL;
    return NULL;
  }
  if ((rt = calloc(1, sizeof *rt)) == NULL) {
    errno = ENOMEM;
    return NULL;
  }
  rt->cfg = *cfg;
  /* the strings are the caller's: keep copies, and only those */
  rt->lua_path = dup_opt(cfg->lua_path);
  rt->lua_cpath = dup_opt(cfg->lua_cpath);
  rt->progname = strdup(cfg->progname ? cfg->progname : "moonbeam");
  rt->cfg.lua_path = rt->cfg.lua_cpath = rt->cfg.progname = NULL;
  rt->no_halt = cfg->no_halt;
  atomic_init(&rt->next_ref, 1);
  atomic_init(&rt->state, RT_NEW);
  pthread_mutex_init(&rt->life_lock, NULL);
  pthread_cond_init(&rt->life_cond, NULL);
  pthread_mutex_init(&rt->host_lock, NULL);
  pthread_mutex_init(&rt->stop_lock, NULL);
  if ((cfg->lua_path && !rt->lua_path) || (cfg->lua_cpath && !rt->lua_cpath) ||
      rt->progname == NULL || ptab_init(rt) != 0 || reg_init(rt) != 0 ||
      code_init(rt) != 0 || net_init(rt) != 0 || (rt->host_enc = msg_enc_new()) == NULL) {
    mb_free(rt);
    errno = ENOMEM;
    return NULL;
  }
  return rt;
}

int mb_start(mb_runtime *rt) {
  int st;
  if (rt == NULL) return MB_EINVAL;
  if ((st = running(rt)) != MB_ENOTSTARTED) return st == 0 ? MB_ESTARTED : st;
  if ((st = timer_start(rt)) != 0) return st;
  if ((st = net_start(rt)) != 0) {
    timer_stop(rt);
    return st;
  }
  atomic_store(&rt->state, RT_RUNNING);
  if ((st = sched_start(rt)) != 0) {
    mb_stop(rt);
    return st;
  }
  return 0;
}

int mb_preload(mb_runtime *rt, const char *name, lua_CFunction open) {
  preload *pl;
  int st;
  if (rt == NULL || name == NULL || open == NULL) return MB_EINVAL;
  if ((st = running(rt)) != MB_ENOTSTARTED) return st == 0 ? MB_ESTARTED : st;
  for (pl = rt->preloads; pl; pl = pl->next)
    if (strcmp(pl->name, name) == 0) {
      pl->open = open;
      return 0;
    }
  if ((pl = malloc(sizeof *pl)) == NULL || (pl->name = strdup(name)) == NULL) {
    free(pl);
    return MB_ENOMEM;
  }
  pl->open = open;
  pl->next = rt->preloads;
  rt->preloads = pl;
  return 0;
}

static int spawn_host(mb_runtime *rt, int kind, const char *what, const char *chunkname,
                      mb_pid *out) {
  spawn_req *req;
  spawn_opts o = {0};
  mb_pid pid;
  int st;
  if (rt == NULL || what == NULL) return MB_EINVAL;
  if ((st = running(rt)) != 0) return st;
  if (kind == SPAWN_FILE) {   /* lua's own message comes from the process; this one, now */
    FILE *f = fopen(what, "r");
    if (f == NULL) return MB_EFILE;
    fclose(f);
  }
  if ((req = calloc(1, sizeof *req)) == NULL) return MB_ENOMEM;
  req->kind = kind;
  req->what = strdup(what);
  req->chunkname = dup_opt(chunkname);
  req->path = dup_opt(rt->lua_path);
  req->cpath = dup_opt(rt->lua_cpath);
  if (req->what == NULL || (chunkname && req->chunkname == NULL)) {
    spawn_req_free(req);
    return MB_ENOMEM;
  }
  o.main = 1;
  st = proc_spawn(rt, NULL, req, &o, &pid);
  if (st == 0 && out) *out = pid;
  return st;
}

int mb_spawn_file(mb_runtime *rt, const char *path, mb_pid *out) {
  return spawn_host(rt, SPAWN_FILE, path, NULL, out);
}

int mb_spawn_string(mb_runtime *rt, const char *chunk, const char *chunkname, mb_pid *out) {
  return spawn_host(rt, SPAWN_STRING, chunk, chunkname ? chunkname : "=(string)", out);
}

int mb_register(mb_runtime *rt, const char *name, mb_pid pid) {
  proc *p;
  int st;
  if (rt == NULL || name == NULL || !term_ispid(pid) || *name == '\0' ||
      strcmp(name, "undefined") == 0)
    return MB_EINVAL;
  if ((st = running(rt)) != 0) return st;
  if ((p = proc_lookup(rt, pid)) == NULL) return MB_ENOPROC;
  st = reg_add(rt, name, p);
  proc_release(p);
  switch (st) {
    case REG_OK: return 0;
    case REG_DEAD: return MB_ENOPROC;
    case REG_TAKEN:
    case REG_HASNAME: return MB_ENAME;
    default: return MB_ENOMEM;
  }
}

int mb_whereis(mb_runtime *rt, const char *name, mb_pid *out) {
  uint64_t pid;
  int st;
  if (rt == NULL || name == NULL || out == NULL) return MB_EINVAL;
  if ((st = running(rt)) != 0) return st;
  if ((pid = reg_whereis(rt, name)) == 0) return MB_ENOPROC;
  *out = pid;
  return 0;
}

/* ================================================================ host messages */

typedef struct host_send {
  mb_runtime *rt;
  mbox_item *item;
  int err;
} host_send;

/* Protected on the host's state: the encoder may raise (out of memory). */
static int host_encode(lua_State *L) {
  host_send *hs = lua_touserdata(L, 2);
  const unsigned char *blob;
  size_t len;
  hs->err = msg_encode(L, 1, 1, hs->rt->host_enc, "msg", &blob, &len);
  if (hs->err == MB_EUNCOPYABLE) return lua_error(L);
  if (hs->err == 0 && (hs->item = mbox_item_new(SIG_MSG, 0, 0, blob, len)) == NULL)
    hs->err = MB_ENOMEM;
  return 0;
}

/* 0 if pid is a live process (a Lua one, or a host mailbox if boxes), else the error. */
static int alive(mb_runtime *rt, uint64_t pid, int boxes) {
  proc *p = proc_lookup(rt, pid);
  int st = p == NULL ? MB_ENOPROC : (p->host && !boxes) ? MB_EINVAL : 0;
  if (p) proc_release(p);
  return st;
}

int mb_send(mb_runtime *rt, mb_pid to, lua_State *L, int idx) {
  host_send hs = {rt, NULL, 0};
  int st;
  if (rt == NULL || L == NULL || !term_ispid(to)) return MB_EINVAL;
  if ((st = running(rt)) != 0 || (st = alive(rt, to, 1)) != 0) return st;
  if (lua_type(L, idx) == LUA_TNONE || lua_isnil(L, idx)) return MB_EINVAL;
  if (!lua_checkstack(L, 3)) return MB_ENOMEM;
  idx = lua_absindex(L, idx);
  lua_pushcfunction(L, host_encode);
  lua_pushvalue(L, idx);
  lua_pushlightuserdata(L, &hs);
  pthread_mutex_lock(&rt->host_lock);
  st = lua_pcall(L, 2, 0, 0);
  pthread_mutex_unlock(&rt->host_lock);
  if (st != LUA_OK) return hs.err == MB_EUNCOPYABLE ? MB_EUNCOPYABLE : (lua_pop(L, 1), MB_ENOMEM);
  if (hs.err != 0) return hs.err;
  proc_deliver(rt, to, hs.item);
  return 0;
}

int mb_interrupt(mb_runtime *rt, mb_pid pid) {
  int st;
  if (rt == NULL || !term_ispid(pid)) return MB_EINVAL;
  if ((st = running(rt)) != 0 || (st = alive(rt, pid, 0)) != 0) return st;
  proc_deliver(rt, pid, mbox_item_new(SIG_INTERRUPT, 0, 0, NULL, 0));
  return 0;
}

/* ================================================================ host mailboxes */

int mb_mailbox_open(mb_runtime *rt, mb_pid *out) {
  uint64_t pid;
  int st;
  if (rt == NULL || out == NULL) return MB_EINVAL;
  if ((st = running(rt)) != 0 || (st = hostbox_open(rt, &pid)) != 0) return st;
  *out = pid;
  return 0;
}

/* Protected on the host's state: the message (a light userdata item) becomes a value. */
static int host_decode(lua_State *L) {
  mbox_item *m = lua_touserdata(L, 1);
  lua_pop(L, 1);
  if (msg_decode(L, m->data, m->len) != 1) return luaL_error(L, "malformed message");
  return 1;
}

int mb_receive(mb_runtime *rt, mb_pid box, lua_State *L, int timeout_ms) {
  mbox_item *m;
  int st;
  if (rt == NULL || L == NULL || !term_ispid(box) || timeout_ms < -1) return MB_EINVAL;
  if ((st = running(rt)) != 0) return st;
  if (!lua_checkstack(L, 4)) return MB_ENOMEM;
  if ((st = hostbox_take(rt, box, timeout_ms, &m)) != 0) return st;
  lua_pushcfunction(L, host_decode);
  lua_pushlightuserdata(L, m);
  st = lua_pcall(L, 1, 1, 0);
  mbox_item_free(m);
  return st == LUA_OK ? 0 : MB_ELUA;
}

int mb_monitor(mb_runtime *rt, mb_pid box, mb_pid pid, mb_ref *ref) {
  uint64_t r;
  int st;
  if (rt == NULL || !term_ispid(box) || !term_ispid(pid)) return MB_EINVAL;
  if ((st = running(rt)) != 0) return st;
  r = rt_make_ref(rt);
  if ((st = hostbox_monitor(rt, box, pid, r)) != 0) return st;
  if (ref) *ref = r;
  return 0;
}

int mb_demonitor(mb_runtime *rt, mb_pid box, mb_ref ref) {
  int st;
  if (rt == NULL || !term_ispid(box) || !term_isref(ref)) return MB_EINVAL;
  if ((st = running(rt)) != 0) return st;
  return hostbox_demonitor(rt, box, ref);
}

int mb_mailbox_close(mb_runtime *rt, mb_pid box) {
  int st;
  if (rt == NULL || !term_ispid(box)) return MB_EINVAL;
  if ((st = running(rt)) != 0) return st;
  return hostbox_close(rt, box);
}

void mb_push_pid(lua_State *L, mb_runtime *rt, mb_pid pid) {
  (void)rt;
  lua_pushlightuserdata(L, (void *)(uintptr_t)pid);
}

int mb_toref(lua_State *L, int idx, mb_ref *out) {
  uint64_t v;
  if (L == NULL || !lua_islightuserdata(L, idx)) return MB_EINVAL;
  v = (uint64_t)(uintptr_t)lua_touserdata(L, idx);
  if (!term_isref(v)) return MB_EINVAL;
  if (out) *out = v;
  return 0;
}

int mb_pid_text(mb_pid pid, char *buf, size_t size) {
  int n;
  if (!term_ispid(pid) || buf == NULL || size == 0) return MB_EINVAL;
  n = term_format(pid, buf, size);
  return n < 0 || (size_t)n >= size ? MB_EINVAL : n;
}

int mb_topid(lua_State *L, int idx, mb_pid *out) {
  uint64_t v;
  if (L == NULL || !lua_islightuserdata(L, idx)) return MB_EINVAL;
  v = (uint64_t)(uintptr_t)lua_touserdata(L, idx);
  if (!term_ispid(v)) return MB_EINVAL;
  if (out) *out = v;
  return 0;
}

int mb_wait(mb_runtime *rt, int *exit_status) {
  if (rt == NULL) return MB_EINVAL;
  if (running(rt) == MB_ENOTSTARTED) return MB_ENOTSTARTED;
  pthread_mutex_lock(&rt->life_lock);
  while (!rt->halted) pthread_cond_wait(&rt->life_cond, &rt->life_lock);
  if (exit_status) *exit_status = rt->halt_status;
  pthread_mutex_unlock(&rt->life_lock);
  return 0;
}

/* ================================================================ stopping */

/* An exit signal with this reason from the runtime itself (<0.0.0>). */
static void exit_signal(mb_runtime *rt, uint64_t pid, const char *reason) {
  msg_buf b;
  msg_buf_init(&b);
  if (msgb_count(&b, 1) == 0 && msgb_str(&b, reason, strlen(reason)) == 0)
    proc_deliver(rt, pid, mbox_item_new(SIG_EXIT, PID_RUNTIME, 0, b.p, b.len));
  msg_buf_free(&b);
}

static void kill_one(uint64_t pid, void *ud) {
  exit_signal(ud, pid, "kill");
}

/* Wait up to ms for the last process to end; returns how many are left. */
static size_t wait_empty(mb_runtime *rt, long ms) {
  struct timespec ts;
  size_t n;
  clock_gettime(CLOCK_REALTIME, &ts);
  ts.tv_sec += ms / 1000;
  ts.tv_nsec += (ms % 1000) * 1000000L;
  if (ts.tv_nsec >= 1000000000L) {
    ts.tv_sec++;
    ts.tv_nsec -= 1000000000L;
  }
  pthread_mutex_lock(&rt->life_lock);
  while (rt->nlive > 0 && pthread_cond_timedwait(&rt->life_cond, &rt->life_lock, &ts) == 0) {}
  n = rt->nlive;
  pthread_mutex_unlock(&rt->life_lock);
  return n;
}

typedef struct stop_round {
  mb_runtime *rt;
  size_t ordered;   /* ordered_stop processes still alive */
} stop_round;

/* The top of a tree: no linked parent, or one that is gone or not stopped in order. */
static int tree_top(mb_runtime *rt, proc *p) {
  proc *parent;
  int top;
  if (p->parent == 0 || (parent = proc_lookup(rt, p->parent)) == NULL) return 1;
  top = !atomic_load(&parent->ordered_stop);
  proc_release(parent);
  return top;
}

static void shutdown_top(uint64_t pid, void *ud) {
  stop_round *r = ud;
  proc *p = proc_lookup(r->rt, pid);
  if (p == NULL) return;
  if (atomic_load(&p->ordered_stop)) {
    r->ordered++;
    if (!atomic_load(&p->stop_sent) && tree_top(r->rt, p)) {
      atomic_store(&p->stop_sent, 1);
      exit_signal(r->rt, pid, "shutdown");
    }
  }
  proc_release(p);
}

/*
** Shut the supervision trees down from the top, as init:stop does: "shutdown" to each
** ordered_stop process whose parent is not one, and again to those whose parent has gone
** meanwhile, until none is left or the time is up.
*/
static void shutdown_trees(mb_runtime *rt) {
  int ms = rt->cfg.stop_timeout_ms ? rt->cfg.stop_timeout_ms : MB_STOP_ORDERED_MS;
  struct timespec now, end;
  if (ms < 0) return;
  clock_gettime(CLOCK_MONOTONIC, &end);
  end.tv_sec += ms / 1000;
  end.tv_nsec += (long)(ms % 1000) * 1000000L;
  for (;;) {
    stop_round r = {rt, 0};
    ptab_each(rt, shutdown_top, &r);
    clock_gettime(CLOCK_MONOTONIC, &now);
    if (r.ordered == 0 || now.tv_sec > end.tv_sec ||
        (now.tv_sec == end.tv_sec && now.tv_nsec >= end.tv_nsec))
      return;
    wait_empty(rt, 10);
  }
}

/*
** Shut the trees down, then kill every process left, wait for them to end (killing again
** what was spawned meanwhile), then stop the threads. A process stuck where it cannot be
** stopped (a loop inside a C call) keeps its scheduler: then the threads are left running
** and MB_EBUSY returned; a later call tries again.
*/
int mb_stop(mb_runtime *rt) {
  int st = 0, state;
  size_t left = 1;
  if (rt == NULL) return MB_EINVAL;
  pthread_mutex_lock(&rt->stop_lock);
  state = atomic_load(&rt->state);
  if (state == RT_NEW || state == RT_STOPPED) {
    atomic_store(&rt->state, RT_STOPPED);
    pthread_mutex_unlock(&rt->stop_lock);
    return 0;
  }
  if (state == RT_RUNNING) {
    atomic_store(&rt->state, RT_STOPPING);
    rt_halt(rt, 0);
    hostbox_wake_all(rt);   /* receivers return MB_ESTOPPED */
    shutdown_trees(rt);
  }
  for (int waited = 0; waited < MB_STOP_TIMEOUT_MS && left > 0; waited += 50) {
    ptab_each(rt, kill_one, rt);
    left = wait_empty(rt, 50);
  }
  if (left > 0) {
    st = MB_EBUSY;
  } else {
    atomic_store(&rt->state, RT_STOPPED);
    net_stop(rt);
    sched_stop(rt);
    timer_stop(rt);
  }
  pthread_mutex_unlock(&rt->stop_lock);
  return st;
}

void mb_free(mb_runtime *rt) {
  if (rt == NULL) return;
  if (atomic_load(&rt->state) != RT_NEW && mb_stop(rt) != 0) return;   /* threads still run */
  timer_stop(rt);
  net_free(rt);
  sched_free(rt);
  ptab_free(rt);
  reg_free(rt);
  code_free(rt);
  while (rt->preloads) {
    preload *pl = rt->preloads;
    rt->preloads = pl->next;
    free(pl->name);
    free(pl);
  }
  msg_enc_free(rt->host_enc);
  pthread_mutex_destroy(&rt->host_lock);
  pthread_mutex_destroy(&rt->stop_lock);
  pthread_cond_destroy(&rt->life_cond);
  pthread_mutex_destroy(&rt->life_lock);
  free(rt->lua_path);
  free(rt->lua_cpath);
  free((char *)rt->progname);
  free(rt);
}
