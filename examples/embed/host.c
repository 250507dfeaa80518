/*
** host.c — a C program that embeds Moonbeam. It gives the processes a library of its own
** (require "host"), runs the supervised checksum server of service.lua, sends it requests
** from two threads at once, checks every reply against a checksum of its own, and stops
** the runtime, which shuts the server down in order.
**
** usage: host [service.lua]   (default: the service.lua next to the host binary)
** Exit status 0 only if every reply came and was right.
*/
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>
#include <moonbeam.h>

enum { THREADS = 2, REQUESTS = 100, TIMEOUT_MS = 5000 };

/* An mb_* result: 0 goes on; a failure is printed as "host: what: text". */
static int failed(int rc, const char *what) {
  if (rc != 0) fprintf(stderr, "host: %s: %s\n", what, mb_strerror(rc));
  return rc != 0;
}

/* Adler-32 (RFC 1950), the checksum both sides compute. */
static uint32_t adler32(const char *s, size_t n) {
  uint32_t a = 1, b = 0;
  for (size_t i = 0; i < n; i++) {
    a = (a + (unsigned char)s[i]) % 65521;
    b = (b + a) % 65521;
  }
  return b << 16 | a;
}

/* {==================================================================
** The host library: require "host" in any process
** =================================================================== */

/* The lines the service reports with host.report, printed after mb_stop. An open function
** given to mb_preload gets no pointer from the host, so what the library shares with it
** lives here; processes call it from every scheduler thread, hence the lock. */
static pthread_mutex_t report_lock = PTHREAD_MUTEX_INITIALIZER;
static char reports[1024];

/* host.checksum(s) → the Adler-32 of s */
static int host_checksum(lua_State *L) {
  size_t n;
  const char *s = luaL_checklstring(L, 1, &n);
  lua_pushinteger(L, adler32(s, n));
  return 1;
}

/* host.report(line) */
static int host_report(lua_State *L) {
  const char *line = luaL_checkstring(L, 1);
  size_t used;
  pthread_mutex_lock(&report_lock);
  used = strlen(reports);
  snprintf(reports + used, sizeof reports - used, "  %s\n", line);
  pthread_mutex_unlock(&report_lock);
  return 0;
}

static int open_host(lua_State *L) {
  static const luaL_Reg fns[] = {
    {"checksum", host_checksum}, {"report", host_report}, {NULL, NULL}};
  luaL_newlib(L, fns);
  return 1;
}

/* }================================================================== */

/* {==================================================================
** The client threads: each with its own Lua state and its own mailbox
** =================================================================== */

typedef struct client {
  mb_runtime *rt;
  mb_pid server;
  int id;
  int right;   /* replies that came, with the right id and checksum */
} client;

/* Sends the server {"checksum", box, id, text} (its handle_info answers it). */
static int send_request(client *c, lua_State *L, mb_pid box, int id, const char *text) {
  int rc;
  lua_createtable(L, 4, 0);
  lua_pushliteral(L, "checksum");
  lua_rawseti(L, -2, 1);
  mb_push_pid(L, c->rt, box);
  lua_rawseti(L, -2, 2);
  lua_pushinteger(L, id);
  lua_rawseti(L, -2, 3);
  lua_pushstring(L, text);
  lua_rawseti(L, -2, 4);
  rc = mb_send(c->rt, c->server, L, -1);
  lua_settop(L, 0);
  return rc;
}

/* Whether the message on top of L is {"checksum", id, sum}. */
static int reply_is(lua_State *L, int id, uint32_t sum) {
  return lua_istable(L, -1) &&
         lua_rawgeti(L, -1, 1) == LUA_TSTRING && strcmp(lua_tostring(L, -1), "checksum") == 0 &&
         lua_rawgeti(L, -2, 2) == LUA_TNUMBER && lua_tointeger(L, -1) == id &&
         lua_rawgeti(L, -3, 3) == LUA_TNUMBER && lua_tointeger(L, -1) == sum;
}

static void *run_client(void *ud) {
  client *c = ud;
  lua_State *L = luaL_newstate();
  char text[64];
  mb_pid box;
  if (L == NULL) {
    fprintf(stderr, "host: thread %d: cannot create a Lua state\n", c->id);
    return NULL;
  }
  if (!failed(mb_mailbox_open(c->rt, &box), "mb_mailbox_open")) {
    for (int i = 1; i <= REQUESTS; i++) {
      snprintf(text, sizeof text, "request %d of thread %d", i, c->id);
      if (failed(send_request(c, L, box, i, text), "mb_send") ||
          failed(mb_receive(c->rt, box, L, TIMEOUT_MS), "mb_receive"))
        break;
      c->right += reply_is(L, i, adler32(text, strlen(text)));
      lua_settop(L, 0);
    }
    failed(mb_mailbox_close(c->rt, box), "mb_mailbox_close");
  }
  lua_close(L);
  return NULL;
}

/* }================================================================== */

/* argv[1], or the service.lua next to the running binary. */
static const char *service_path(int argc, char **argv, char *buf, size_t size) {
  ssize_t n;
  char *slash;
  if (argc > 1) return argv[1];
  n = readlink("/proc/self/exe", buf, size);
  if (n < 0 || (size_t)n + sizeof "service.lua" > size) return "service.lua";
  buf[n] = '\0';
  slash = strrchr(buf, '/');
  strcpy(slash ? slash + 1 : buf, "service.lua");
  return buf;
}

/* Spawns the service and waits for its "ready"; a monitor says so if it fails instead.
** Then the server is found by its name. */
static int start_service(mb_runtime *rt, lua_State *L, mb_pid box, const char *path,
                         mb_pid *server) {
  mb_pid service;
  mb_ref ref;
  int ready;
  if (failed(mb_spawn_file(rt, path, &service), path) ||
      failed(mb_monitor(rt, box, service, &ref), "mb_monitor") ||
      failed(mb_receive(rt, box, L, TIMEOUT_MS), "waiting for the service"))
    return 1;
  ready = lua_type(L, -1) == LUA_TSTRING && strcmp(lua_tostring(L, -1), "ready") == 0;
  lua_settop(L, 0);
  if (!ready) {   /* its DOWN: the error itself is on stderr already */
    fprintf(stderr, "host: the service ended before it was ready\n");
    return 1;
  }
  return failed(mb_demonitor(rt, box, ref), "mb_demonitor") ||
         failed(mb_whereis(rt, "checksum", server), "the checksum server");
}

int main(int argc, char **argv) {
  char buf[PATH_MAX];
  const char *path = service_path(argc, argv, buf, sizeof buf);
  mb_config cfg;
  mb_runtime *rt;
  lua_State *L = luaL_newstate();
  pthread_t threads[THREADS];
  client clients[THREADS];
  mb_pid box, server;
  int started = 0, right = 0, stopped;
  mb_config_default(&cfg);
  cfg.progname = "host";   /* how the service's uncaught errors begin on stderr */
  rt = mb_new(&cfg);
  if (rt == NULL || L == NULL) {
    perror(rt == NULL ? "host: mb_new" : "host: luaL_newstate");
    return 1;
  }
  if (failed(mb_preload(rt, "host", open_host), "mb_preload") ||
      failed(mb_start(rt), "mb_start") ||
      failed(mb_mailbox_open(rt, &box), "mb_mailbox_open") ||
      failed(mb_register(rt, "host", box), "mb_register") ||
      start_service(rt, L, box, path, &server))
    goto stop;
  printf("the checksum server is up; %d threads send it %d requests each\n", THREADS, REQUESTS);
  for (; started < THREADS; started++) {
    clients[started] = (client){rt, server, started + 1, 0};
    if (pthread_create(&threads[started], NULL, run_client, &clients[started]) != 0) {
      fprintf(stderr, "host: cannot start thread %d\n", started + 1);
      break;
    }
  }
  for (int i = 0; i < started; i++) {
    pthread_join(threads[i], NULL);
    printf("thread %d: %d of %d replies right\n", clients[i].id, clients[i].right, REQUESTS);
    right += clients[i].right;
  }
stop:
  stopped = !failed(mb_stop(rt), "mb_stop");
  if (stopped)   /* the scheduler threads are joined: reports is ours again */
    printf("stopped the runtime%s\n%s", reports[0] ? "; the service reported:" : "", reports);
  mb_free(rt);
  lua_close(L);
  if (stopped && right == THREADS * REQUESTS) {
    printf("every reply was right\n");
    return 0;
  }
  printf("%d of %d replies right\n", right, THREADS * REQUESTS);
  return 1;
}
