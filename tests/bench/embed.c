/* bench: the embedding API. µs per host round trip (mb_send to an echo process, mb_receive
** of its answer) from 1 host thread and from 4 at once, and ms per runtime life
** (mb_new, mb_start, a process, mb_stop, mb_free).
**
** cc -O2 -o embed tests/bench/embed.c -iquote interp build/libmoonbeam.a \
**    $(pkg-config --cflags --libs lua5.4) -lm -ldl -pthread
** ./embed [round trips per thread]   (default 200000) */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <lauxlib.h>
#include <lualib.h>

#include "moonbeam.h"

static const char *const ECHO =
  "while true do local m = process.receive() process.send(m[1], m[2]) end";

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

typedef struct client {
  mb_runtime *rt;
  mb_pid echo;
  long n, ok;
} client;

static void *run(void *ud) {
  client *c = ud;
  lua_State *L = luaL_newstate();
  mb_pid box;
  if (mb_mailbox_open(c->rt, &box) != 0) return NULL;
  for (long i = 0; i < c->n; i++) {
    lua_createtable(L, 2, 0);
    mb_push_pid(L, c->rt, box);
    lua_rawseti(L, -2, 1);
    lua_pushinteger(L, i);
    lua_rawseti(L, -2, 2);
    if (mb_send(c->rt, c->echo, L, -1) != 0 || mb_receive(c->rt, box, L, 10000) != 0) break;
    c->ok += lua_tointeger(L, -1) == i;
    lua_settop(L, 0);
  }
  lua_close(L);
  return NULL;
}

static double round_trips(int threads, long n) {
  mb_runtime *rt = mb_new(NULL);
  pthread_t th[16];
  client c[16];
  mb_pid echo;
  double t0, t;
  long ok = 0;
  if (rt == NULL || mb_start(rt) != 0 || mb_spawn_string(rt, ECHO, NULL, &echo) != 0) exit(1);
  t0 = now();
  for (int i = 0; i < threads; i++) {
    c[i] = (client){rt, echo, n, 0};
    pthread_create(&th[i], NULL, run, &c[i]);
  }
  for (int i = 0; i < threads; i++) {
    pthread_join(th[i], NULL);
    ok += c[i].ok;
  }
  t = now() - t0;
  if (ok != threads * n) fprintf(stderr, "only %ld of %ld answers right\n", ok, threads * n);
  mb_stop(rt);
  mb_free(rt);
  return t;
}

int main(int argc, char **argv) {
  long n = argc > 1 ? atol(argv[1]) : 200000;
  double t = round_trips(1, n);
  printf("bench=embed threads=1 n=%ld per_round_trip_us=%.2f\n", n, t * 1e6 / n);
  t = round_trips(4, n / 4);
  printf("bench=embed threads=4 n=%ld round_trips_per_s=%.0f\n", n / 4 * 4, n / 4 * 4 / t);
  double t0 = now();
  for (int i = 0; i < 50; i++) {
    mb_runtime *rt = mb_new(NULL);
    mb_pid pid;
    if (rt == NULL || mb_start(rt) != 0 || mb_spawn_string(rt, "return", NULL, &pid) != 0)
      return 1;
    mb_stop(rt);
    mb_free(rt);
  }
  printf("bench=embed runtime_life_ms=%.2f\n", (now() - t0) * 1e3 / 50);
  return 0;
}
