/* rt.c — the runtime object and the public C API (mb_*). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "code.h"
#include "link.h"
#include "mbconf.h"
#include "msg.h"
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

void rt_write(FILE *f, const char *s, size_t len) {
  flockfile(f);
  fwrite(s, 1, len, f);
  fflush(f);
  funlockfile(f);
}

/* ================================================================ life */

static char *dup_opt(const char *s) { return s ? strdup(s) : NULL; }

mb_runtime *mb_new(const mb_config *cfg) {
  mb_runtime *rt = calloc(1, sizeof *rt);
  if (rt == NULL) return NULL;
  if (cfg) rt->cfg = *cfg;
  else mb_config_default(&rt->cfg);
  rt->lua_path = dup_opt(rt->cfg.lua_path);
  rt->lua_cpath = dup_opt(rt->cfg.lua_cpath);
  rt->cfg.lua_path = rt->lua_path;
  rt->cfg.lua_cpath = rt->lua_cpath;
  rt->no_halt = rt->cfg.no_halt;
  rt->progname = rt->cfg.progname ? rt->cfg.progname : "moonbeam";
  atomic_init(&rt->next_ref, 1);
  atomic_init(&rt->state, RT_NEW);
  pthread_mutex_init(&rt->life_lock, NULL);
  pthread_cond_init(&rt->life_cond, NULL);
  pthread_mutex_init(&rt->host_lock, NULL);
  if (ptab_init(rt) != 0 || reg_init(rt) != 0 || code_init(rt) != 0 ||
      (rt->host_enc = msg_enc_new()) == NULL) {
    mb_free(rt);
    return NULL;
  }
  return rt;
}

int mb_start(mb_runtime *rt) {
  int st;
  if (rt == NULL) return MB_EINVAL;
  if (atomic_load(&rt->state) != RT_NEW) return MB_ESTATE;
  if ((st = timer_start(rt)) != 0) return st;
  atomic_store(&rt->state, RT_RUNNING);
  if ((st = sched_start(rt)) != 0) {
    mb_stop(rt);
    return st;
  }
  return 0;
}

int mb_preload(mb_runtime *rt, const char *name, lua_CFunction open) {
  preload *pl;
  if (rt == NULL || name == NULL || open == NULL) return MB_EINVAL;
  if (atomic_load(&rt->state) != RT_NEW) return MB_ESTATE;
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
  if (atomic_load(&rt->state) != RT_RUNNING) return MB_ESTOPPED;
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
  if (rt == NULL || name == NULL || strcmp(name, "undefined") == 0) return MB_EINVAL;
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

int mb_send(mb_runtime *rt, mb_pid to, lua_State *L, int idx) {
  host_send hs = {rt, NULL, 0};
  int st;
  if (rt == NULL || L == NULL || !term_ispid(to)) return MB_EINVAL;
  if (atomic_load(&rt->state) != RT_RUNNING) return MB_ESTOPPED;
  idx = lua_absindex(L, idx);
  if (lua_isnoneornil(L, idx) || !lua_checkstack(L, 3)) return MB_EINVAL;
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
  proc *p;
  if (rt == NULL || !term_ispid(pid)) return MB_EINVAL;
  if ((p = proc_lookup(rt, pid)) == NULL) return MB_ENOPROC;
  proc_release(p);
  proc_deliver(rt, pid, mbox_item_new(SIG_INTERRUPT, 0, 0, NULL, 0));
  return 0;
}

void mb_push_pid(lua_State *L, mb_runtime *rt, mb_pid pid) {
  (void)rt;
  lua_pushlightuserdata(L, (void *)(uintptr_t)pid);
}

int mb_topid(lua_State *L, int idx, mb_pid *out) {
  uint64_t v;
  if (!lua_islightuserdata(L, idx)) return MB_EINVAL;
  v = (uint64_t)(uintptr_t)lua_touserdata(L, idx);
  if (!term_ispid(v)) return MB_EINVAL;
  if (out) *out = v;
  return 0;
}

int mb_wait(mb_runtime *rt, int *exit_status) {
  if (rt == NULL) return MB_EINVAL;
  pthread_mutex_lock(&rt->life_lock);
  while (!rt->halted) pthread_cond_wait(&rt->life_cond, &rt->life_lock);
  if (exit_status) *exit_status = rt->halt_status;
  pthread_mutex_unlock(&rt->life_lock);
  return 0;
}

/* ================================================================ stopping */

static void kill_one(uint64_t pid, void *ud) {
  mb_runtime *rt = ud;
  msg_buf b;
  msg_buf_init(&b);
  if (msgb_count(&b, 1) == 0 && msgb_str(&b, "kill", 4) == 0)
    proc_deliver(rt, pid, mbox_item_new(SIG_EXIT, 0, 0, b.p, b.len));
  msg_buf_free(&b);
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

/*
** Kill every process, wait for them to end (killing again what was spawned meanwhile),
** then stop the threads. A process stuck where it cannot be stopped (a loop inside a C
** call) keeps its scheduler: then the threads are left running and MB_EBUSY returned.
*/
int mb_stop(mb_runtime *rt) {
  int expected = RT_RUNNING;
  size_t left = 1;
  if (rt == NULL) return MB_EINVAL;
  if (!atomic_compare_exchange_strong(&rt->state, &expected, RT_STOPPING))
    return expected == RT_STOPPED || expected == RT_NEW ? 0 : MB_ESTATE;
  rt_halt(rt, 0);
  for (int waited = 0; waited < MB_STOP_TIMEOUT_MS && left > 0; waited += 50) {
    ptab_each(rt, kill_one, rt);
    left = wait_empty(rt, 50);
  }
  if (left > 0) return MB_EBUSY;
  atomic_store(&rt->state, RT_STOPPED);
  sched_stop(rt);
  timer_stop(rt);
  return 0;
}

void mb_free(mb_runtime *rt) {
  if (rt == NULL) return;
  if (atomic_load(&rt->state) == RT_RUNNING && mb_stop(rt) != 0) return;
  if (atomic_load(&rt->state) == RT_STOPPING) return;   /* threads still run: leave it */
  timer_stop(rt);
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
  pthread_cond_destroy(&rt->life_cond);
  pthread_mutex_destroy(&rt->life_lock);
  free(rt->lua_path);
  free(rt->lua_cpath);
  free(rt);
}
