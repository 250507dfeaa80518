/* line.c — the shell's line reader: a thread reads stdin and mails each line to the shell. */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "line.h"

/* One reader per moonbeam command (this is the program, not a library). */
static struct reader {
  mb_runtime *rt;
  pthread_t thread;
  int started, stop;
  int wake[2];               /* written to stop the thread while it waits on stdin */
  pthread_mutex_t lock;      /* guards the request and stop */
  pthread_cond_t cond;
  int pending;               /* a request waits */
  mb_pid pid;
  void *ref;                 /* the request's ref, a light userdata */
  char *prompt;
  char buf[4096];            /* reader thread only: input not yet returned */
  size_t len;
  int eof;
} R = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER,
       .wake = {-1, -1}};

void line_init(mb_runtime *rt) { R.rt = rt; }

/* Wait until stdin is readable (0) or we are told to stop (-1). */
static int wait_input(void) {
  struct pollfd fds[2] = {{0, POLLIN, 0}, {R.wake[0], POLLIN, 0}};
  for (;;) {
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    if (fds[1].revents) return -1;
    if (fds[0].revents) return 0;
  }
}

/* One line (without its newline) into out; 0 at end of input, -1 when stopping. */
static int read_line(luaL_Buffer *out) {
  for (;;) {
    char *nl = memchr(R.buf, '\n', R.len);
    if (nl || (R.eof && R.len > 0)) {
      size_t n = nl ? (size_t)(nl - R.buf) : R.len;
      luaL_addlstring(out, R.buf, n);
      n += nl != NULL;
      memmove(R.buf, R.buf + n, R.len - n);
      R.len -= n;
      return 1;
    }
    if (R.eof) return 0;
    if (R.len == sizeof R.buf) {   /* a very long line: hand over what we have */
      luaL_addlstring(out, R.buf, R.len);
      R.len = 0;
      continue;
    }
    if (wait_input() < 0) return -1;
    ssize_t got = read(0, R.buf + R.len, sizeof R.buf - R.len);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) R.eof = 1;
    else R.len += (size_t)got;
  }
}

static void prompt(const char *p) {
  flockfile(stdout);
  fputs(p, stdout);
  fflush(stdout);
  funlockfile(stdout);
}

/* Serve one request: build {ref, line} on our own state and send it. 0 when stopping. */
static int serve(lua_State *L, mb_pid pid, void *ref, const char *p) {
  luaL_Buffer b;
  int got;
  prompt(p);
  lua_settop(L, 0);
  lua_createtable(L, 2, 0);
  lua_pushlightuserdata(L, ref);
  lua_rawseti(L, 1, 1);
  luaL_buffinit(L, &b);
  got = read_line(&b);
  luaL_pushresult(&b);
  if (got < 0) return 0;
  if (got > 0) lua_rawseti(L, 1, 2);
  mb_send(R.rt, pid, L, 1);
  return 1;
}

static void *reader_main(void *arg) {
  lua_State *L = luaL_newstate();
  (void)arg;
  for (;;) {
    mb_pid pid;
    void *ref;
    char *p;
    pthread_mutex_lock(&R.lock);
    while (!R.pending && !R.stop) pthread_cond_wait(&R.cond, &R.lock);
    if (R.stop) {
      pthread_mutex_unlock(&R.lock);
      break;
    }
    pid = R.pid;
    ref = R.ref;
    p = R.prompt;
    R.prompt = NULL;
    R.pending = 0;
    pthread_mutex_unlock(&R.lock);
    int more = L != NULL && serve(L, pid, ref, p ? p : "");
    free(p);
    if (!more) break;
  }
  if (L) lua_close(L);
  return NULL;
}

static int l_request(lua_State *L) {
  mb_pid pid;
  char *p;
  if (mb_topid(L, 1, &pid) != 0) return luaL_typeerror(L, 1, "pid");
  luaL_checktype(L, 2, LUA_TLIGHTUSERDATA);
  p = strdup(luaL_optstring(L, 3, ""));
  if (p == NULL) return luaL_error(L, "not enough memory");
  pthread_mutex_lock(&R.lock);
  if (!R.started && !R.stop && pipe(R.wake) == 0 &&
      pthread_create(&R.thread, NULL, reader_main, NULL) == 0)
    R.started = 1;
  free(R.prompt);
  R.prompt = p;
  R.pid = pid;
  R.ref = lua_touserdata(L, 2);
  R.pending = 1;
  pthread_cond_signal(&R.cond);
  int ok = R.started;
  pthread_mutex_unlock(&R.lock);
  if (!ok) return luaL_error(L, "cannot start the line reader");
  return 0;
}

void line_stop(void) {
  int started;
  pthread_mutex_lock(&R.lock);
  R.stop = 1;
  started = R.started;
  pthread_cond_signal(&R.cond);
  pthread_mutex_unlock(&R.lock);
  if (!started) return;
  if (write(R.wake[1], "x", 1) < 0) perror("line reader");
  pthread_join(R.thread, NULL);
  close(R.wake[0]);
  close(R.wake[1]);
  free(R.prompt);
  R.prompt = NULL;
  R.started = 0;
}

int luaopen_moonbeam_line(lua_State *L) {
  static const luaL_Reg fns[] = {{"request", l_request}, {NULL, NULL}};
  luaL_newlib(L, fns);
  return 1;
}
