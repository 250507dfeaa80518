/* line.c — the shell's line reader: a thread reads stdin (readline on a terminal) and
** mails each line to the shell. See line.h for the protocol.
**
** Threads: the reader thread alone touches stdin, readline and history, and the fields
** marked "reader only". R.lock guards the request hand-over (pending request, last
** requester, started/stop, the wake pipe's life); it is never held while calling
** readline, Lua or mb_*. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <readline/history.h>
#include <readline/readline.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "line.h"

#define HISTORY_LINES 1000

typedef struct request {
  mb_pid pid;
  void *ref;                 /* the request's ref, a light userdata */
  char *prompt;
  char **cands;              /* completion candidates */
  size_t ncands;
} request;

/* One reader per moonbeam command (this is the program, not a library). */
static struct reader {
  mb_runtime *rt;
  int sigfd;                 /* read end of main.c's signal pipe, or -1 */
  pthread_t thread;
  pthread_mutex_t lock;
  int started, stop;         /* under lock */
  int failed;                /* under lock: the thread ended on an error; no more requests */
  int wake[2];               /* written to make the thread look at a request or stop */
  int pending;               /* under lock: req holds a request not yet taken */
  request req;
  int have_last;             /* under lock: whom Ctrl-C interrupts outside a request */
  mb_pid last;
  /* reader only */
  lua_State *L;
  int tty;
  int active;                /* serving cur: a prompt is shown */
  int resized;               /* the terminal changed size while no prompt was shown */
  request cur;
  char *history;             /* the history file, or NULL */
  int got_line;              /* readline's handler ran */
  char *line;                /* what it got (NULL: end of input) */
  char buf[4096];            /* plain mode: input not yet returned */
  size_t len;
  int eof;
} R = {.lock = PTHREAD_MUTEX_INITIALIZER, .wake = {-1, -1}, .sigfd = -1};

static void request_free(request *q) {
  free(q->prompt);
  for (size_t i = 0; i < q->ncands; i++) free(q->cands[i]);
  free(q->cands);
  memset(q, 0, sizeof *q);
}

void line_init(mb_runtime *rt, int sigfd) {
  R.rt = rt;
  R.sigfd = sigfd;
}

/* ================================================================ answers */

/* Send {ref, line} (line NULL: {ref}; interrupted: {ref, false}) for the current request. */
static void answer(const char *line, size_t len, int interrupted) {
  lua_State *L = R.L;
  R.active = 0;
  if (L == NULL) return;
  lua_settop(L, 0);
  lua_createtable(L, 2, 0);
  lua_pushlightuserdata(L, R.cur.ref);
  lua_rawseti(L, 1, 1);
  if (interrupted) {
    lua_pushboolean(L, 0);
    lua_rawseti(L, 1, 2);
  } else if (line) {
    lua_pushlstring(L, line, len);
    lua_rawseti(L, 1, 2);
  }
  mb_send(R.rt, R.cur.pid, L, 1);
  lua_settop(L, 0);
}

static void out(const char *s) {
  flockfile(stdout);
  fputs(s, stdout);
  fflush(stdout);
  funlockfile(stdout);
}

/* ================================================================ plain lines */

/* Answer from the buffer if it holds a whole line (or the rest at end of input). */
static int plain_answer(void) {
  char *nl = memchr(R.buf, '\n', R.len);
  size_t n;
  if (!nl && !R.eof && R.len < sizeof R.buf) return 0;
  if (!nl && R.eof && R.len == 0) {
    answer(NULL, 0, 0);
    return 1;
  }
  n = nl ? (size_t)(nl - R.buf) : R.len;   /* a very long line goes in pieces */
  answer(R.buf, n, 0);
  n += nl != NULL;
  memmove(R.buf, R.buf + n, R.len - n);
  R.len -= n;
  return 1;
}

static void plain_read(void) {
  ssize_t got = read(0, R.buf + R.len, sizeof R.buf - R.len);
  if (got < 0 && (errno == EINTR || errno == EAGAIN)) return;
  if (got <= 0) R.eof = 1;
  else R.len += (size_t)got;
}

/* ================================================================ readline */

static char *candidate(const char *text, int state) {
  static size_t i, tlen;
  if (state == 0) {
    i = 0;
    tlen = strlen(text);
  }
  while (i < R.cur.ncands) {
    const char *c = R.cur.cands[i++];
    if (strncmp(c, text, tlen) != 0) continue;
    /* one level at a time: "str" gives "string." rather than every "string.x" */
    const char *dot = strchr(c + tlen, '.');
    return dot ? strndup(c, (size_t)(dot - c) + 1) : strdup(c);
  }
  return NULL;
}

static char **complete(const char *text, int start, int end) {
  (void)start;
  (void)end;
  rl_attempted_completion_over = 1;   /* no file names */
  rl_completion_suppress_append = 1;
  return rl_completion_matches(text, candidate);
}

static void on_line(char *line) {
  R.got_line = 1;
  R.line = line;
  rl_callback_handler_remove();
}

static void add_line_to_history(const char *line) {
  HIST_ENTRY *prev = history_length > 0 ? history_get(history_base + history_length - 1) : NULL;
  if (line[0] == '\0' || (prev && strcmp(prev->line, line) == 0)) return;
  add_history(line);
}

static void rl_setup(void) {
  static const char breaks[] = " \t\n\"\\'`@$><=;|&{(,+-*/%^~#[]:)}!";
  const char *home = getenv("HOME");
  rl_readline_name = "moonbeam";
  rl_change_environment = 0;   /* no setenv of LINES/COLUMNS behind the processes' backs */
  rl_catch_signals = 0;        /* main.c's handlers own SIGINT and SIGWINCH */
  rl_catch_sigwinch = 0;
  rl_instream = stdin;
  rl_outstream = stdout;
  rl_attempted_completion_function = complete;
  rl_basic_word_break_characters = breaks;
  rl_completer_word_break_characters = breaks;
  rl_basic_quote_characters = "";   /* else a completion after `"` gets a closing `"` */
  using_history();
  stifle_history(HISTORY_LINES);
  if (home && *home) {
    size_t n = strlen(home) + sizeof "/.moonbeam_history";
    if ((R.history = malloc(n)) != NULL) {
      snprintf(R.history, n, "%s/.moonbeam_history", home);
      read_history(R.history);
    }
  }
}

static void rl_finish(void) {
  if (R.history == NULL) return;
  if (write_history(R.history) == 0) history_truncate_file(R.history, HISTORY_LINES);
  free(R.history);
  R.history = NULL;
}

static void rl_got_line(void) {
  char *line = R.line;
  R.got_line = 0;
  R.line = NULL;
  if (line) {
    add_line_to_history(line);
    answer(line, strlen(line), 0);
  } else {
    answer(NULL, 0, 0);
  }
  free(line);
}

/* ================================================================ requests and signals */

static void serve(void) {
  R.active = 1;
  if (R.tty) {
    if (R.resized) rl_reset_screen_size();
    R.resized = 0;
    rl_callback_handler_install(R.cur.prompt ? R.cur.prompt : "", on_line);
  } else {
    out(R.cur.prompt ? R.cur.prompt : "");
  }
}

/* Take a new request if one waits (it replaces one being served). 0 when stopping. */
static int take_request(void) {
  int fresh = 0;
  pthread_mutex_lock(&R.lock);
  int stop = R.stop;
  if (!stop && R.pending) {
    request_free(&R.cur);
    R.cur = R.req;
    memset(&R.req, 0, sizeof R.req);
    R.pending = 0;
    fresh = 1;
  }
  pthread_mutex_unlock(&R.lock);
  if (stop) return 0;
  if (fresh) {
    if (R.active && R.tty) rl_callback_handler_remove();
    serve();
  }
  return 1;
}

/* Ctrl-C while a line is read: drop it, and tell the shell (it asks again). */
static void cancel_line(void) {
  if (R.tty) {
    rl_echo_signal_char(SIGINT);
    rl_callback_sigcleanup();
    rl_free_line_state();
    rl_replace_line("", 1);
    rl_callback_handler_remove();
    out("\n");
  }
  answer(NULL, 0, 1);
}

static void on_signals(void) {
  char sigs[64];
  ssize_t n = read(R.sigfd, sigs, sizeof sigs);
  int cancelled = 0;
  for (ssize_t i = 0; i < n; i++) {
    if (sigs[i] == 'i') {
      if (R.active) {
        cancel_line();
        cancelled = 1;
      } else if (!cancelled) {   /* a second Ctrl-C of the same burst is not for the shell */
        mb_pid pid = 0;
        pthread_mutex_lock(&R.lock);
        int have = R.have_last;
        if (have) pid = R.last;
        pthread_mutex_unlock(&R.lock);
        if (have) mb_interrupt(R.rt, pid);
      }
    } else if (sigs[i] == 'w' && R.tty) {
      if (R.active) rl_resize_terminal();
      else R.resized = 1;
    }
  }
}

static void *reader_main(void *arg) {
  (void)arg;
  R.tty = isatty(0);
  if (R.tty) rl_setup();
  for (;;) {
    char drain[64];
    if (!take_request()) break;
    if (R.active && !R.tty && plain_answer()) continue;
    struct pollfd fds[3] = {
      {R.wake[0], POLLIN, 0},
      {R.sigfd, POLLIN, 0},
      {R.active && !R.eof ? 0 : -1, POLLIN, 0},
    };
    if (poll(fds, 3, -1) < 0) {
      if (errno == EINTR) continue;
      perror("moonbeam: line reader");   /* cannot wait for input: it ends here */
      if (R.active) answer(NULL, 0, 0);
      pthread_mutex_lock(&R.lock);
      R.failed = 1;
      pthread_mutex_unlock(&R.lock);
      break;
    }
    if (fds[0].revents) {
      while (read(R.wake[0], drain, sizeof drain) > 0) {}
    }
    if (fds[1].revents) {
      if (!take_request()) break;
      on_signals();
    }
    if (R.active && (fds[2].revents & (POLLIN | POLLHUP | POLLERR))) {
      if (R.tty) {
        rl_callback_read_char();
        if (R.got_line) rl_got_line();
      } else {
        plain_read();
      }
    }
  }
  if (R.tty) {
    if (R.active) {
      rl_callback_handler_remove();
      out("\n");
    }
    rl_finish();
  }
  request_free(&R.cur);
  if (R.L) lua_close(R.L);
  R.L = NULL;
  return NULL;
}

/* Under R.lock: start the thread if it is not running. 0 if it cannot run. */
static int start_locked(void) {
  if (R.failed) return 0;
  if (R.started) return 1;
  if (R.stop || pipe(R.wake) != 0) return 0;
  for (int i = 0; i < 2; i++) {
    fcntl(R.wake[i], F_SETFL, O_NONBLOCK);
    fcntl(R.wake[i], F_SETFD, FD_CLOEXEC);
  }
  /* the state the answers are built in: made here, so that failing to make it fails the
  ** request instead of leaving the shell waiting */
  if ((R.L = luaL_newstate()) == NULL ||
      pthread_create(&R.thread, NULL, reader_main, NULL) != 0) {
    if (R.L) lua_close(R.L);
    R.L = NULL;
    close(R.wake[0]);
    close(R.wake[1]);
    R.wake[0] = R.wake[1] = -1;
    return 0;
  }
  R.started = 1;
  return 1;
}

/* Under R.lock (so the pipe cannot be closed meanwhile): make the thread look again. */
static void wake_locked(void) {
  if (R.wake[1] >= 0 && write(R.wake[1], "x", 1) < 0 && errno != EAGAIN) perror("line reader");
}

void line_start(mb_pid pid) {
  pthread_mutex_lock(&R.lock);
  if (!R.have_last) {
    R.last = pid;
    R.have_last = 1;
  }
  start_locked();
  pthread_mutex_unlock(&R.lock);
}

static int l_request(lua_State *L) {
  request q = {0};
  mb_pid pid;
  if (mb_topid(L, 1, &pid) != 0) return luaL_typeerror(L, 1, "pid");
  luaL_checktype(L, 2, LUA_TLIGHTUSERDATA);
  const char *prompt = luaL_optstring(L, 3, "");
  size_t n = 0;
  if (!lua_isnoneornil(L, 4)) {
    luaL_checktype(L, 4, LUA_TTABLE);
    n = (size_t)luaL_len(L, 4);
    for (size_t i = 1; i <= n; i++) {
      int t = lua_rawgeti(L, 4, (lua_Integer)i);
      lua_pop(L, 1);
      if (t != LUA_TSTRING) return luaL_error(L, "candidate %d is not a string", (int)i);
    }
  }
  q.pid = pid;
  q.ref = lua_touserdata(L, 2);
  q.prompt = strdup(prompt);
  q.cands = calloc(n + 1, sizeof *q.cands);
  int ok = q.prompt && q.cands;
  for (size_t i = 0; ok && i < n; i++) {
    lua_rawgeti(L, 4, (lua_Integer)i + 1);
    ok = (q.cands[q.ncands++] = strdup(lua_tostring(L, -1))) != NULL;
    lua_pop(L, 1);
  }
  if (!ok) {
    request_free(&q);
    return luaL_error(L, "not enough memory");
  }
  pthread_mutex_lock(&R.lock);
  ok = start_locked();
  if (ok) {
    request_free(&R.req);
    R.req = q;
    R.pending = 1;
    R.last = pid;
    R.have_last = 1;
    wake_locked();
  }
  pthread_mutex_unlock(&R.lock);
  if (!ok) {
    request_free(&q);
    return luaL_error(L, "cannot start the line reader");
  }
  return 0;
}

void line_stop(void) {
  int started;
  pthread_mutex_lock(&R.lock);
  R.stop = 1;
  started = R.started;
  wake_locked();
  pthread_mutex_unlock(&R.lock);
  if (!started) return;
  pthread_join(R.thread, NULL);
  pthread_mutex_lock(&R.lock);
  close(R.wake[0]);
  close(R.wake[1]);
  R.wake[0] = R.wake[1] = -1;
  request_free(&R.req);
  R.pending = 0;
  R.started = 0;
  pthread_mutex_unlock(&R.lock);
}

int luaopen_moonbeam_line(lua_State *L) {
  static const luaL_Reg fns[] = {{"request", l_request}, {NULL, NULL}};
  luaL_newlib(L, fns);
  return 1;
}
