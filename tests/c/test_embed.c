/* test_embed.c — the embedding API (moonbeam.h) as a host uses it: life of a runtime, host
** mailboxes, messages both ways from many host threads, every error path, two runtimes at
** once, and the ordered shutdown of mb_stop. Uses nothing but the public header. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "moonbeam.h"
#include "test.h"

/* {==================================================================
** Helpers
** =================================================================== */

/* An echo service: {reply_to, x} → {"echo", x, self}; "stop" ends it. */
static const char *const ECHO =
  "while true do\n"
  "  local m = process.receive()\n"
  "  if m == 'stop' then return end\n"
  "  process.send(m[1], {'echo', m[2], process.self()})\n"
  "end\n";

static mb_runtime *started(int schedulers) {
  mb_config cfg;
  mb_runtime *rt;
  mb_config_default(&cfg);
  cfg.schedulers = schedulers;
  rt = mb_new(&cfg);
  if (rt && mb_start(rt) != 0) {
    mb_free(rt);
    rt = NULL;
  }
  return rt;
}

static lua_State *host_state(void) {
  lua_State *L = luaL_newstate();
  luaL_openlibs(L);
  return L;
}

/* Most tests: a started runtime, a host state, and a host mailbox registered as "host". */
typedef struct fixture {
  mb_runtime *rt;
  lua_State *L;
  mb_pid box;
} fixture;

static fixture setup(int schedulers) {
  fixture f = {started(schedulers), host_state(), 0};
  CHECK(f.rt != NULL);
  CHECK(mb_mailbox_open(f.rt, &f.box) == 0 && mb_register(f.rt, "host", f.box) == 0);
  return f;
}

static void teardown(fixture *f) {
  CHECK(mb_stop(f->rt) == 0);
  mb_free(f->rt);
  lua_close(f->L);
}

static mb_pid spawn(mb_runtime *rt, const char *src) {
  mb_pid pid = 0;
  int rc = mb_spawn_string(rt, src, "=test", &pid);
  CHECK(rc == 0);
  return pid;
}

/* Sends {box, n} to `to`. */
static int send_req(mb_runtime *rt, lua_State *L, mb_pid to, mb_pid box, lua_Integer n) {
  int rc;
  lua_createtable(L, 2, 0);
  mb_push_pid(L, rt, box);
  lua_rawseti(L, -2, 1);
  lua_pushinteger(L, n);
  lua_rawseti(L, -2, 2);
  rc = mb_send(rt, to, L, -1);
  lua_pop(L, 1);
  return rc;
}

static int send_string(mb_runtime *rt, lua_State *L, mb_pid to, const char *s) {
  int rc;
  lua_pushstring(L, s);
  rc = mb_send(rt, to, L, -1);
  lua_pop(L, 1);
  return rc;
}

/* Receives {"echo", n, pid} on box; returns n, or -1. */
static lua_Integer recv_echo(mb_runtime *rt, lua_State *L, mb_pid box, int ms) {
  lua_Integer n = -1;
  if (mb_receive(rt, box, L, ms) != 0) return -1;
  if (lua_istable(L, -1) && lua_rawgeti(L, -1, 1) == LUA_TSTRING &&
      strcmp(lua_tostring(L, -1), "echo") == 0 && lua_rawgeti(L, -2, 2) == LUA_TNUMBER)
    n = lua_tointeger(L, -1);
  lua_settop(L, 0);
  return n;
}

/* Receives a message and returns it as text through Lua's tostring of field i (or the
** value itself if i is 0), in buf. */
static const char *recv_field(mb_runtime *rt, lua_State *L, mb_pid box, int i, int ms,
                              char *buf, size_t size) {
  int rc = mb_receive(rt, box, L, ms);
  if (rc != 0) {
    snprintf(buf, size, "(error %d: %s)", rc, mb_strerror(rc));
    return buf;
  }
  if (i > 0) lua_rawgeti(L, -1, i);
  snprintf(buf, size, "%s", luaL_tolstring(L, -1, NULL));
  lua_settop(L, 0);
  return buf;
}

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* A host library that processes require: recorder.add(s) appends s to a shared log. */
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static char log_buf[1024];

static int rec_add(lua_State *L) {
  const char *s = luaL_checkstring(L, 1);
  pthread_mutex_lock(&log_lock);
  if (strlen(log_buf) + strlen(s) + 2 < sizeof log_buf) {
    if (log_buf[0]) strcat(log_buf, " ");
    strcat(log_buf, s);
  }
  pthread_mutex_unlock(&log_lock);
  return 0;
}

static int open_recorder(lua_State *L) {
  static const luaL_Reg fns[] = {{"add", rec_add}, {NULL, NULL}};
  luaL_newlib(L, fns);
  return 1;
}

static int open_other(lua_State *L) {
  lua_pushliteral(L, "the replaced one");
  return 1;
}

/* }================================================================== */

TEST(strerror_texts) {
  CHECK_STR(mb_strerror(0), "no error");
  CHECK_STR(mb_strerror(MB_EINVAL), "invalid argument");
  CHECK_STR(mb_strerror(MB_ENOPROC), "no such process");
  CHECK_STR(mb_strerror(MB_ESTOPPED), "runtime is stopped");
  CHECK_STR(mb_strerror(MB_EUNCOPYABLE), "value cannot be copied into a message");
  CHECK_STR(mb_strerror(MB_ETIMEDOUT), "timed out");
  CHECK_STR(mb_strerror(MB_ENOTSTARTED), "runtime is not started");
  CHECK_STR(mb_strerror(MB_ESTARTED), "runtime is already started");
  CHECK_STR(mb_strerror(MB_ENOTBOX), "pid is not a host mailbox");
  CHECK_STR(mb_strerror(MB_EFILE), "cannot read the file");
  CHECK_STR(mb_strerror(-1000), "unknown error");
}

TEST(bad_config) {
  mb_config cfg;
  mb_config_default(&cfg);
  CHECK(cfg.schedulers == 0 && cfg.lua_path == NULL && cfg.stop_timeout_ms == 0);
  cfg.schedulers = -1;
  errno = 0;
  CHECK(mb_new(&cfg) == NULL && errno == EINVAL);
  cfg.schedulers = 1025;
  CHECK(mb_new(&cfg) == NULL && errno == EINVAL);
  cfg.schedulers = 1;
  cfg.stop_timeout_ms = -2;
  CHECK(mb_new(&cfg) == NULL && errno == EINVAL);
}

TEST(null_runtime) {
  lua_State *L = host_state();
  mb_pid pid = 0;
  int st = 0;
  lua_pushinteger(L, 1);
  CHECK(mb_start(NULL) == MB_EINVAL);
  CHECK(mb_preload(NULL, "x", open_other) == MB_EINVAL);
  CHECK(mb_spawn_string(NULL, "return", NULL, &pid) == MB_EINVAL);
  CHECK(mb_spawn_file(NULL, "x.lua", &pid) == MB_EINVAL);
  CHECK(mb_register(NULL, "x", pid) == MB_EINVAL);
  CHECK(mb_send(NULL, pid, L, -1) == MB_EINVAL);
  CHECK(mb_mailbox_open(NULL, &pid) == MB_EINVAL);
  CHECK(mb_receive(NULL, pid, L, 0) == MB_EINVAL);
  CHECK(mb_mailbox_close(NULL, pid) == MB_EINVAL);
  CHECK(mb_interrupt(NULL, pid) == MB_EINVAL);
  CHECK(mb_wait(NULL, &st) == MB_EINVAL);
  CHECK(mb_stop(NULL) == MB_EINVAL);
  mb_free(NULL);
  lua_close(L);
}

TEST(not_started_then_stopped) {
  mb_runtime *rt = mb_new(NULL);
  lua_State *L = host_state();
  mb_pid pid;
  int st;
  CHECK(rt != NULL);
  CHECK(mb_preload(rt, "recorder", open_recorder) == 0);
  CHECK(mb_spawn_string(rt, "return", NULL, &pid) == MB_ENOTSTARTED);
  CHECK(mb_mailbox_open(rt, &pid) == MB_ENOTSTARTED);
  CHECK(mb_wait(rt, &st) == MB_ENOTSTARTED);
  CHECK(mb_stop(rt) == 0);   /* never started: nothing to stop */
  CHECK(mb_start(rt) == MB_ESTOPPED);
  CHECK(mb_preload(rt, "x", open_other) == MB_ESTOPPED);
  CHECK(mb_mailbox_open(rt, &pid) == MB_ESTOPPED);
  mb_free(rt);
  lua_close(L);
}

TEST(start_twice_and_late_preload) {
  mb_runtime *rt = started(2);
  CHECK(rt != NULL);
  CHECK(mb_start(rt) == MB_ESTARTED);
  CHECK(mb_preload(rt, "recorder", open_recorder) == MB_ESTARTED);
  CHECK(mb_stop(rt) == 0);
  CHECK(mb_stop(rt) == 0);
  mb_free(rt);
}

TEST(echo_round_trip) {
  fixture f = setup(2);
  mb_pid svc = spawn(f.rt, ECHO), got = 0;
  CHECK(send_req(f.rt, f.L, svc, f.box, 42) == 0);
  CHECK(recv_echo(f.rt, f.L, f.box, 5000) == 42);
  /* the reply carries the service's pid; mb_topid gets it back */
  CHECK(send_req(f.rt, f.L, svc, f.box, 7) == 0);
  CHECK(mb_receive(f.rt, f.box, f.L, 5000) == 0);
  lua_rawgeti(f.L, -1, 3);
  CHECK(mb_topid(f.L, -1, &got) == 0 && got == svc);
  lua_rawgeti(f.L, -2, 1);
  CHECK(mb_topid(f.L, -1, &got) == MB_EINVAL);   /* "echo" is no pid */
  lua_settop(f.L, 0);
  teardown(&f);
}

TEST(bad_pids) {
  fixture f = setup(1);
  mb_runtime *rt = f.rt;
  lua_State *L = f.L;
  mb_pid svc = spawn(rt, ECHO), box = f.box, gone;
  char buf[128];
  CHECK(mb_mailbox_open(rt, NULL) == MB_EINVAL);
  CHECK(send_req(rt, L, 12345, box, 1) == MB_EINVAL);   /* not a pid at all */
  CHECK(mb_receive(rt, 12345, L, 0) == MB_EINVAL);
  CHECK(mb_receive(rt, svc, L, 0) == MB_ENOTBOX);      /* a Lua process */
  CHECK(mb_mailbox_close(rt, svc) == MB_ENOTBOX);
  CHECK(mb_interrupt(rt, box) == MB_EINVAL);           /* no Lua code runs there */
  CHECK(mb_receive(rt, box, L, -2) == MB_EINVAL);
  /* a closed mailbox is a dead pid */
  CHECK(mb_mailbox_open(rt, &gone) == 0);
  CHECK(mb_mailbox_close(rt, gone) == 0);
  CHECK(mb_mailbox_close(rt, gone) == MB_ENOPROC);
  CHECK(mb_receive(rt, gone, L, 0) == MB_ENOPROC);
  CHECK(send_req(rt, L, gone, box, 1) == MB_ENOPROC);
  CHECK(mb_register(rt, "gone", gone) == MB_ENOPROC);
  CHECK(mb_interrupt(rt, gone) == MB_ENOPROC);
  /* a process that ended: a monitor's DOWN says so, then sends to it fail */
  mb_pid watcher = spawn(rt, "local svc = process.receive() process.monitor(svc)\n"
                             "process.send('host', process.receive())");
  mb_push_pid(L, rt, svc);
  CHECK(mb_send(rt, watcher, L, -1) == 0);
  lua_pop(L, 1);
  CHECK(send_string(rt, L, svc, "stop") == 0);
  CHECK_STR(recv_field(rt, L, box, 1, 5000, buf, sizeof buf), "DOWN");
  CHECK(send_req(rt, L, svc, box, 1) == MB_ENOPROC);
  teardown(&f);
}

TEST(uncopyable_values) {
  fixture f = setup(1);
  lua_State *L = f.L;
  mb_pid svc = spawn(f.rt, ECHO);
  lua_newuserdata(L, 8);
  CHECK(mb_send(f.rt, svc, L, -1) == MB_EUNCOPYABLE);
  CHECK_STR(lua_tostring(L, -1), "msg: userdata cannot be sent");
  lua_settop(L, 0);
  CHECK(luaL_dostring(L, "return {reply = 1, items = {1, 2, coroutine.create(print)}}") == 0);
  CHECK(mb_send(f.rt, svc, L, -1) == MB_EUNCOPYABLE);
  CHECK_STR(lua_tostring(L, -1), "msg.items[3]: thread cannot be sent");
  lua_settop(L, 0);
  lua_pushnil(L);
  CHECK(mb_send(f.rt, svc, L, -1) == MB_EINVAL);
  CHECK(mb_send(f.rt, svc, L, 5) == MB_EINVAL);   /* no value there */
  lua_settop(L, 0);
  /* nothing was delivered: the next request is answered first */
  CHECK(send_req(f.rt, L, svc, f.box, 9) == 0);
  CHECK(recv_echo(f.rt, L, f.box, 5000) == 9);
  CHECK(mb_receive(f.rt, f.box, L, 0) == MB_ETIMEDOUT);
  teardown(&f);
}

TEST(receive_timeout) {
  fixture f = setup(1);
  char buf[64];
  double t0;
  CHECK(mb_receive(f.rt, f.box, f.L, 0) == MB_ETIMEDOUT);
  t0 = now_ms();
  CHECK(mb_receive(f.rt, f.box, f.L, 100) == MB_ETIMEDOUT);
  CHECK(now_ms() - t0 >= 99);
  CHECK(lua_gettop(f.L) == 0);
  /* a message sent later by a process wakes a waiting receive */
  spawn(f.rt, "process.sleep(50) process.send('host', 'late')");
  CHECK_STR(recv_field(f.rt, f.L, f.box, 0, -1, buf, sizeof buf), "late");
  teardown(&f);
}

TEST(register_host_mailbox) {
  fixture f = setup(2);
  mb_pid other;
  char buf[128];
  CHECK(mb_mailbox_open(f.rt, &other) == 0);
  CHECK(mb_register(f.rt, "host", other) == MB_ENAME);
  CHECK(mb_register(f.rt, "again", f.box) == MB_ENAME);   /* it has a name */
  CHECK(mb_register(f.rt, "undefined", other) == MB_EINVAL);
  CHECK(mb_register(f.rt, "", other) == MB_EINVAL);
  CHECK(mb_register(f.rt, NULL, other) == MB_EINVAL);
  spawn(f.rt, "process.send('host', {'hi', process.info(process.whereis('host')).initial_call})");
  CHECK(mb_receive(f.rt, f.box, f.L, 5000) == 0);
  lua_rawgeti(f.L, -1, 1);
  lua_rawgeti(f.L, -2, 2);
  CHECK_STR(lua_tostring(f.L, -2), "hi");
  CHECK_STR(lua_tostring(f.L, -1), "mb_mailbox_open");
  lua_settop(f.L, 0);
  /* the name goes with the mailbox */
  CHECK(mb_mailbox_close(f.rt, f.box) == 0);
  CHECK(mb_register(f.rt, "host", other) == 0);
  spawn(f.rt, "process.send('host', 'to the new one')");
  CHECK_STR(recv_field(f.rt, f.L, other, 0, 5000, buf, sizeof buf), "to the new one");
  teardown(&f);
}

TEST(links_monitors_and_exits) {
  fixture f = setup(2);
  lua_State *L = f.L;
  mb_pid watched;
  char buf[256];
  CHECK(mb_mailbox_open(f.rt, &watched) == 0 && mb_register(f.rt, "watched", watched) == 0);
  /* a linked process that fails: the mailbox traps the exit */
  spawn(f.rt, "process.link(process.whereis('host')) error('boom', 0)");
  CHECK(mb_receive(f.rt, f.box, L, 5000) == 0);
  lua_rawgeti(L, -1, 1);
  lua_rawgeti(L, -2, 3);
  CHECK_STR(lua_tostring(L, -2), "EXIT");
  CHECK_STR(lua_tostring(L, -1), "boom");
  lua_settop(L, 0);
  /* a monitor on a mailbox fires when the host closes it */
  spawn(f.rt, "process.monitor(process.whereis('watched')) process.send('host', 'ready')\n"
              "local d = process.receive() process.send('host', d[5])");
  CHECK_STR(recv_field(f.rt, L, f.box, 0, 5000, buf, sizeof buf), "ready");
  CHECK(mb_mailbox_close(f.rt, watched) == 0);
  CHECK_STR(recv_field(f.rt, L, f.box, 0, 5000, buf, sizeof buf), "normal");
  /* exit/2 with a reason is trapped; "kill" closes the mailbox */
  spawn(f.rt, "process.exit(process.whereis('host'), 'go away')");
  CHECK_STR(recv_field(f.rt, L, f.box, 3, 5000, buf, sizeof buf), "go away");
  spawn(f.rt, "process.exit(process.whereis('host'), 'kill')");
  CHECK(mb_receive(f.rt, f.box, L, 5000) == MB_ENOPROC);
  teardown(&f);
}

TEST(whereis_monitor_and_pid_text) {
  fixture f = setup(2);
  lua_State *L = f.L;
  mb_pid svc, got = 0, other;
  mb_ref ref = 0, ref2 = 0, seen = 0;
  char buf[64];
  CHECK(mb_whereis(f.rt, "host", &got) == 0 && got == f.box);
  CHECK(mb_whereis(f.rt, "nobody", &got) == MB_ENOPROC);
  CHECK(mb_whereis(f.rt, NULL, &got) == MB_EINVAL);
  CHECK(mb_pid_text(f.box, buf, sizeof buf) > 0 && strncmp(buf, "<0.", 3) == 0);
  CHECK(mb_pid_text(f.box, buf, 4) == MB_EINVAL);
  CHECK(mb_pid_text(42, buf, sizeof buf) == MB_EINVAL);
  /* a monitor from the host: DOWN with the ref, the pid and the reason */
  svc = spawn(f.rt, "process.receive() error({'failed', 7})");
  CHECK(mb_monitor(f.rt, f.box, svc, &ref) == 0);
  CHECK(send_string(f.rt, L, svc, "now") == 0);
  CHECK(mb_receive(f.rt, f.box, L, 5000) == 0);
  lua_rawgeti(L, -1, 1);
  CHECK_STR(lua_tostring(L, -1), "DOWN");
  lua_rawgeti(L, -2, 2);
  CHECK(mb_toref(L, -1, &seen) == 0 && seen == ref);
  CHECK(mb_topid(L, -1, &got) == MB_EINVAL);
  lua_rawgeti(L, -3, 4);
  CHECK(mb_topid(L, -1, &got) == 0 && got == svc);
  lua_rawgeti(L, -4, 5);
  lua_rawgeti(L, -1, 1);
  CHECK_STR(lua_tostring(L, -1), "failed");
  lua_settop(L, 0);
  /* a dead pid: noproc at once */
  CHECK(mb_monitor(f.rt, f.box, svc, NULL) == 0);
  CHECK_STR(recv_field(f.rt, L, f.box, 5, 0, buf, sizeof buf), "noproc");
  /* demonitor: no DOWN comes */
  svc = spawn(f.rt, "process.receive()");
  CHECK(mb_monitor(f.rt, f.box, svc, &ref2) == 0);
  CHECK(mb_demonitor(f.rt, f.box, ref2) == 0);
  CHECK(send_string(f.rt, L, svc, "end") == 0);
  CHECK(mb_receive(f.rt, f.box, L, 100) == MB_ETIMEDOUT);
  /* not on host mailboxes, not with bad values */
  CHECK(mb_mailbox_open(f.rt, &other) == 0);
  CHECK(mb_monitor(f.rt, f.box, other, &ref) == MB_EINVAL);
  CHECK(mb_monitor(f.rt, svc, f.box, &ref) == MB_EINVAL);
  CHECK(mb_monitor(f.rt, other, 12345, &ref) == MB_EINVAL);
  CHECK(mb_demonitor(f.rt, f.box, 12345) == MB_EINVAL);
  teardown(&f);
}

TEST(functions_and_modules_in_messages) {
  fixture f = setup(1);
  lua_State *L = f.L;
  char buf[64];
  spawn(f.rt, "local k = 10 process.send('host', function(x) return x * k + #string.rep('a', 2) end)");
  CHECK(mb_receive(f.rt, f.box, L, 5000) == 0);
  CHECK(lua_isfunction(L, -1));
  lua_pushinteger(L, 4);
  CHECK(lua_pcall(L, 1, 1, 0) == LUA_OK && lua_tointeger(L, -1) == 42);
  lua_settop(L, 0);
  /* a module the host state cannot require: the message is consumed, the error given */
  spawn(f.rt, "package.preload.only_here = function() return {} end\n"
              "local m = require 'only_here'\n"
              "process.send('host', function() return m end) process.send('host', 'next')");
  CHECK(mb_receive(f.rt, f.box, L, 5000) == MB_ELUA);
  CHECK(strstr(lua_tostring(L, -1), "only_here") != NULL);
  lua_settop(L, 0);
  CHECK_STR(recv_field(f.rt, L, f.box, 0, 5000, buf, sizeof buf), "next");
  teardown(&f);
}

TEST(preload_and_spawn_file) {
  mb_config cfg;
  mb_runtime *rt;
  lua_State *L = host_state();
  mb_pid box, pid;
  char buf[128];
  mb_config_default(&cfg);
  cfg.schedulers = 1;
  rt = mb_new(&cfg);
  CHECK(mb_preload(rt, "recorder", open_other) == 0);
  CHECK(mb_preload(rt, "recorder", open_recorder) == 0);   /* the later one counts */
  CHECK(mb_preload(rt, NULL, open_recorder) == MB_EINVAL);
  CHECK(mb_preload(rt, "x", NULL) == MB_EINVAL);
  CHECK(mb_start(rt) == 0);
  CHECK(mb_mailbox_open(rt, &box) == 0 && mb_register(rt, "host", box) == 0);
  spawn(rt, "process.send('host', type(require('recorder').add))");
  CHECK_STR(recv_field(rt, L, box, 0, 5000, buf, sizeof buf), "function");
  CHECK(mb_spawn_file(rt, "/nonexistent/service.lua", &pid) == MB_EFILE);
  CHECK(mb_spawn_file(rt, NULL, &pid) == MB_EINVAL);
  FILE *f = fopen("/tmp/mb_test_embed_service.lua", "w");
  CHECK(f != NULL);
  fputs("process.send('host', {'from a file', ...})\n", f);
  fclose(f);
  CHECK(mb_spawn_file(rt, "/tmp/mb_test_embed_service.lua", &pid) == 0);
  CHECK_STR(recv_field(rt, L, box, 1, 5000, buf, sizeof buf), "from a file");
  remove("/tmp/mb_test_embed_service.lua");
  mb_stop(rt);
  mb_free(rt);
  lua_close(L);
}

/* A receiver blocked in mb_receive returns when mb_stop begins. */
typedef struct blocked {
  mb_runtime *rt;
  mb_pid box;
  int rc;
} blocked;

static void *block_in_receive(void *ud) {
  blocked *b = ud;
  lua_State *L = host_state();
  b->rc = mb_receive(b->rt, b->box, L, -1);
  lua_close(L);
  return NULL;
}

TEST(calls_after_stop) {
  mb_runtime *rt = started(2);
  lua_State *L = host_state();
  mb_pid svc = spawn(rt, ECHO), box;
  blocked b = {rt, 0, 1};
  pthread_t th;
  int st = -1;
  CHECK(mb_mailbox_open(rt, &box) == 0);
  b.box = box;
  CHECK(pthread_create(&th, NULL, block_in_receive, &b) == 0);
  CHECK(mb_stop(rt) == 0);
  pthread_join(th, NULL);
  CHECK(b.rc == MB_ESTOPPED);
  CHECK(send_req(rt, L, svc, box, 1) == MB_ESTOPPED);
  CHECK(mb_receive(rt, box, L, 0) == MB_ESTOPPED);
  CHECK(mb_mailbox_open(rt, &box) == MB_ESTOPPED);
  CHECK(mb_mailbox_close(rt, box) == MB_ESTOPPED);
  CHECK(mb_spawn_string(rt, ECHO, NULL, &svc) == MB_ESTOPPED);
  CHECK(mb_register(rt, "x", svc) == MB_ESTOPPED);
  CHECK(mb_interrupt(rt, svc) == MB_ESTOPPED);
  CHECK(mb_start(rt) == MB_ESTOPPED);
  CHECK(mb_wait(rt, &st) == 0 && st == 0);
  CHECK(mb_stop(rt) == 0);
  mb_free(rt);
  lua_close(L);
}

/* Host threads: each sends `per` requests to the service from its own state and mailbox
** and checks every reply. */
typedef struct client {
  mb_runtime *rt;
  mb_pid svc;
  int id, per, ok;
} client;

static void *run_client(void *ud) {
  client *c = ud;
  lua_State *L = host_state();
  mb_pid box;
  c->ok = 0;
  if (mb_mailbox_open(c->rt, &box) == 0) {
    for (int i = 0; i < c->per; i++) {
      lua_Integer n = (lua_Integer)c->id * 1000000 + i;
      if (send_req(c->rt, L, c->svc, box, n) != 0 || recv_echo(c->rt, L, box, 10000) != n) break;
      c->ok++;
    }
    mb_mailbox_close(c->rt, box);
  }
  lua_close(L);
  return NULL;
}

TEST(many_host_threads) {
  enum { NCLIENTS = 4, PER = 2000 };
  mb_runtime *rt = started(2);
  mb_pid svc = spawn(rt, ECHO);
  pthread_t th[NCLIENTS];
  client c[NCLIENTS];
  for (int i = 0; i < NCLIENTS; i++) {
    c[i] = (client){rt, svc, i + 1, PER, 0};
    CHECK(pthread_create(&th[i], NULL, run_client, &c[i]) == 0);
  }
  for (int i = 0; i < NCLIENTS; i++) {
    pthread_join(th[i], NULL);
    CHECK(c[i].ok == PER);
  }
  mb_stop(rt);
  mb_free(rt);
}

/* Several receivers on one mailbox: every message reaches exactly one of them. */
typedef struct sharer {
  mb_runtime *rt;
  mb_pid box;
  int got;
  lua_Integer sum;
} sharer;

static void *share_receive(void *ud) {
  sharer *s = ud;
  lua_State *L = host_state();
  while (mb_receive(s->rt, s->box, L, -1) == 0) {
    lua_Integer n = lua_tointeger(L, -1);
    lua_settop(L, 0);
    if (n == 0) break;   /* one end mark per receiver */
    s->got++;
    s->sum += n;
  }
  lua_close(L);
  return NULL;
}

TEST(shared_mailbox) {
  enum { NRECV = 3, N = 3000 };
  mb_runtime *rt = started(2);
  mb_pid box;
  pthread_t th[NRECV];
  sharer s[NRECV];
  char src[256];
  int got = 0;
  lua_Integer sum = 0;
  CHECK(mb_mailbox_open(rt, &box) == 0 && mb_register(rt, "shared", box) == 0);
  for (int i = 0; i < NRECV; i++) {
    s[i] = (sharer){rt, box, 0, 0};
    CHECK(pthread_create(&th[i], NULL, share_receive, &s[i]) == 0);
  }
  snprintf(src, sizeof src,
           "for i = 1, %d do process.send('shared', i) end\n"
           "for i = 1, %d do process.send('shared', 0) end", N, NRECV);
  spawn(rt, src);
  for (int i = 0; i < NRECV; i++) {
    pthread_join(th[i], NULL);
    got += s[i].got;
    sum += s[i].sum;
  }
  CHECK(got == N);
  CHECK(sum == (lua_Integer)N * (N + 1) / 2);
  mb_stop(rt);
  mb_free(rt);
}

/* Two runtimes at once, each driven by its own thread, and again, and again. */
static void *one_runtime(void *ud) {
  int *ok = ud;
  mb_runtime *rt = started(1);
  lua_State *L = host_state();
  mb_pid svc, box;
  *ok = 0;
  if (rt && mb_spawn_string(rt, ECHO, NULL, &svc) == 0 && mb_mailbox_open(rt, &box) == 0) {
    for (int i = 0; i < 300; i++)
      if (send_req(rt, L, svc, box, i) == 0 && recv_echo(rt, L, box, 10000) == i) (*ok)++;
  }
  if (rt && mb_stop(rt) != 0) *ok = -1;
  mb_free(rt);
  lua_close(L);
  return NULL;
}

TEST(two_runtimes_at_once) {
  for (int round = 0; round < 3; round++) {
    pthread_t a, b;
    int oka = 0, okb = 0;
    CHECK(pthread_create(&a, NULL, one_runtime, &oka) == 0);
    CHECK(pthread_create(&b, NULL, one_runtime, &okb) == 0);
    pthread_join(a, NULL);
    pthread_join(b, NULL);
    CHECK(oka == 300 && okb == 300);
  }
}

TEST(create_and_free_repeatedly) {
  for (int i = 0; i < 25; i++) {
    mb_runtime *rt = started(2);
    lua_State *L = host_state();
    mb_pid svc, box;
    CHECK(rt != NULL);
    svc = spawn(rt, ECHO);
    CHECK(mb_mailbox_open(rt, &box) == 0);
    CHECK(send_req(rt, L, svc, box, i) == 0 && recv_echo(rt, L, box, 10000) == i);
    if (i % 2) CHECK(mb_stop(rt) == 0);   /* mb_free stops it otherwise */
    mb_free(rt);
    lua_close(L);
  }
  /* never started */
  mb_free(mb_new(NULL));
}

/* mb_stop shuts a supervision tree down in order: the supervisor stops its trapping
** children last-started first, and each runs terminate; a process monitoring the tree
** hears of it before it is killed itself. */
static const char *const TREE =
  "local gen_server, supervisor = require 'gen_server', require 'supervisor'\n"
  "local rec = require 'recorder'\n"
  "local W = {}\n"
  "function W.start_link(id) return gen_server.start_link(W, id) end\n"
  "function W.init(id) process.flag('trap_exit', true) return 'ok', id end\n"
  "function W.terminate(reason, id) rec.add(id .. ':' .. tostring(reason)) end\n"
  "local function child(id) return {id = id, start = {W.start_link, id}} end\n"
  "local sup = supervisor.start_link({child('a'), child('b'), child('c')},\n"
  "                                  {strategy = 'one_for_one'})\n"
  "process.spawn(function()\n"
  "  process.monitor(sup)\n"
  "  local d = process.receive({'DOWN', process.ANY, 'process', process.ANY, process.ANY})\n"
  "  rec.add('down:' .. tostring(d[5]))\n"
  "end)\n"
  "process.send('host', 'up')\n"
  "process.receive()\n";

TEST(ordered_stop) {
  mb_config cfg;
  mb_runtime *rt;
  lua_State *L = host_state();
  mb_pid box;
  char buf[64];
  mb_config_default(&cfg);
  cfg.schedulers = 2;
  rt = mb_new(&cfg);
  CHECK(mb_preload(rt, "recorder", open_recorder) == 0);
  CHECK(mb_start(rt) == 0);
  CHECK(mb_mailbox_open(rt, &box) == 0 && mb_register(rt, "host", box) == 0);
  spawn(rt, TREE);
  CHECK_STR(recv_field(rt, L, box, 0, 5000, buf, sizeof buf), "up");
  log_buf[0] = '\0';
  CHECK(mb_stop(rt) == 0);
  CHECK_STR(log_buf, "c:shutdown b:shutdown a:shutdown down:shutdown");
  mb_free(rt);
  lua_close(L);
}

int main(void) {
  RUN(strerror_texts);
  RUN(bad_config);
  RUN(null_runtime);
  RUN(not_started_then_stopped);
  RUN(start_twice_and_late_preload);
  RUN(echo_round_trip);
  RUN(bad_pids);
  RUN(uncopyable_values);
  RUN(receive_timeout);
  RUN(register_host_mailbox);
  RUN(links_monitors_and_exits);
  RUN(whereis_monitor_and_pid_text);
  RUN(functions_and_modules_in_messages);
  RUN(preload_and_spawn_file);
  RUN(calls_after_stop);
  RUN(many_host_threads);
  RUN(shared_mailbox);
  RUN(two_runtimes_at_once);
  RUN(create_and_free_repeatedly);
  RUN(ordered_stop);
  return test_summary();
}
