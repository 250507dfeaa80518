/* main.c — the moonbeam command: lua's command line, run as the first process of a runtime. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>

#include "../repl/line.h"
#include "moonbeam.h"

enum { HAS_E = 1, HAS_I = 2, HAS_V = 4, HAS_NOENV = 8, HAS_W = 16 };

/* The command line, for the moonbeam.args module of the first process. */
static int cli_argc, cli_script, cli_flags, cli_repl;
static char **cli_argv;

/* REPL mode: SIGINT and SIGWINCH only write a byte here; the line reader reacts. */
static int sig_pipe[2] = {-1, -1};

static void usage(const char *progname, const char *badopt, const char *badval) {
  if (badval)
    fprintf(stderr, "%s: '%s' needs a number of schedulers from 1 to 1024, not '%s'\n",
            progname, badopt, badval);
  else if (badopt) {
    if (badopt[1] == 'e' || badopt[1] == 'l' || (badopt[1] == 'S' && !badopt[2]))
      fprintf(stderr, "%s: '%s' needs argument\n", progname, badopt);
    else
      fprintf(stderr, "%s: unrecognized option '%s'\n", progname, badopt);
  }
  fprintf(stderr,
          "usage: %s [options] [script [args]]\n"
          "Available options are:\n"
          "  -e stat   execute string 'stat'\n"
          "  -i        enter interactive mode after executing 'script'\n"
          "  -l mod    require library 'mod' into global 'mod'\n"
          "  -l g=mod  require library 'mod' into global 'g'\n"
          "  -v        show version information\n"
          "  -E        ignore environment variables\n"
          "  -W        turn warnings on\n"
          "  -S n      run n scheduler threads (default: one per core)\n"
          "  --no-halt keep running after the main script ends\n"
          "  --        stop handling options\n"
          "  -         stop handling options and execute stdin\n",
          progname);
}

static int schedulers_arg(const char *s) {
  char *end;
  long n = strtol(s, &end, 10);
  return (*s && *end == '\0' && n > 0 && n <= 1024) ? (int)n : -1;
}

/*
** Options as lua reads them, plus -S n and --no-halt. Returns the flags, or -1 (after
** printing usage) on a bad option; *script is the index of the script (0 if none).
*/
static int collect(int argc, char **argv, mb_config *cfg, int *script) {
  int flags = 0;
  *script = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (a[0] != '-') { *script = i; return flags; }
    if (strcmp(a, "--no-halt") == 0) { cfg->no_halt = 1; continue; }
    switch (a[1]) {
      case '-':
        if (a[2] != '\0') goto bad;
        if (i + 1 < argc) *script = i + 1;
        return flags;
      case '\0': *script = i; return flags;
      case 'E': if (a[2]) goto bad; flags |= HAS_NOENV; break;
      case 'W': if (a[2]) goto bad; flags |= HAS_W; break;
      case 'i': if (a[2]) goto bad; flags |= HAS_I | HAS_V; break;
      case 'v': if (a[2]) goto bad; flags |= HAS_V; break;
      case 'e': flags |= HAS_E; /* FALLTHROUGH */
      case 'l':
        if (a[2] == '\0' && (++i >= argc || argv[i][0] == '-')) goto bad;
        break;
      case 'S': {
        const char *n = a[2] ? a + 2 : (++i < argc ? argv[i] : NULL);
        if (n == NULL) goto bad;
        if ((cfg->schedulers = schedulers_arg(n)) < 0) {
          usage(argv[0], a, n);
          return -1;
        }
        break;
      }
      default: goto bad;
    }
    continue;
  bad:
    usage(argv[0], a, NULL);
    return -1;
  }
  return flags;
}

static void setbool(lua_State *L, const char *k, int v) {
  lua_pushboolean(L, v);
  lua_setfield(L, -2, k);
}

/* require "moonbeam.args" in the first process: the command line. */
static int open_args(lua_State *L) {
  lua_createtable(L, 0, 12);
  lua_createtable(L, cli_argc, 1);
  for (int i = 0; i < cli_argc; i++) {
    lua_pushstring(L, cli_argv[i]);
    lua_rawseti(L, -2, i);
  }
  lua_setfield(L, -2, "argv");
  lua_pushinteger(L, cli_argc);
  lua_setfield(L, -2, "argc");
  lua_pushinteger(L, cli_script);
  lua_setfield(L, -2, "script");
  lua_pushstring(L, cli_argv[0]);
  lua_setfield(L, -2, "progname");
  lua_pushstring(L, "Moonbeam " MB_VERSION " (" LUA_COPYRIGHT ")");
  lua_setfield(L, -2, "version");
  setbool(L, "has_e", cli_flags & HAS_E);
  setbool(L, "interactive", cli_flags & HAS_I);
  setbool(L, "show_version", cli_flags & HAS_V);
  setbool(L, "no_env", cli_flags & HAS_NOENV);
  setbool(L, "warnings", cli_flags & HAS_W);
  setbool(L, "tty", isatty(0));
  setbool(L, "repl", cli_repl);
  return 1;
}

static void on_signal(int sig) {
  int saved = errno;
  if (write(sig_pipe[1], sig == SIGINT ? "i" : "w", 1) < 0) {}
  errno = saved;
}

/* The shell will run: Ctrl-C goes to the line reader (which interrupts the evaluation). */
static int catch_signals(void) {
  struct sigaction sa;
  if (pipe(sig_pipe) != 0) return -1;
  for (int i = 0; i < 2; i++) {
    fcntl(sig_pipe[i], F_SETFL, O_NONBLOCK);
    fcntl(sig_pipe[i], F_SETFD, FD_CLOEXEC);
  }
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sa.sa_flags = SA_RESTART;
  sigemptyset(&sa.sa_mask);
  if (sigaction(SIGINT, &sa, NULL) != 0 || sigaction(SIGWINCH, &sa, NULL) != 0) return -1;
  return 0;
}

static const char *const MAIN_CHUNK =
  "return require('moonbeam.cli').main(require('moonbeam.args'))";

/* A server holds a socket per connection: the command lets itself open as many files as
** the hard limit allows (as Go does). A host embedding the runtime decides for itself. */
static void raise_file_limit(void) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
}

int main(int argc, char **argv) {
  mb_config cfg;
  mb_runtime *rt;
  const char *env = getenv("MOONBEAM_SCHEDULERS");
  int status = 1, st;
  mb_pid main_pid;
  mb_config_default(&cfg);
  raise_file_limit();
  if (env && *env) cfg.schedulers = schedulers_arg(env) > 0 ? schedulers_arg(env) : 0;
  cli_argc = argc;
  cli_argv = argv;
  cfg.progname = argv[0] && argv[0][0] ? argv[0] : "moonbeam";
  if ((cli_flags = collect(argc, argv, &cfg, &cli_script)) < 0) return EXIT_FAILURE;
  /* as lua: -i, or nothing to run and a terminal on stdin. The shell ends the runtime
  ** itself (os.exit), and it may die and be replaced: the main process's end must not. */
  cli_repl = (cli_flags & HAS_I) ||
             (cli_script == 0 && !(cli_flags & (HAS_E | HAS_V)) && isatty(0));
  if (cli_repl) cfg.no_halt = 1;
  cfg.no_env = (cli_flags & HAS_NOENV) != 0;
  cfg.warnings = (cli_flags & HAS_W) != 0;
  if ((rt = mb_new(&cfg)) == NULL) {
    fprintf(stderr, "%s: cannot create the runtime\n", cfg.progname);
    return EXIT_FAILURE;
  }
  if (cli_repl && catch_signals() != 0) perror(cfg.progname);
  line_init(rt, sig_pipe[0]);
  if ((st = mb_preload(rt, "moonbeam.args", open_args)) != 0 ||
      (st = mb_preload(rt, "moonbeam.line", luaopen_moonbeam_line)) != 0 ||
      (st = mb_start(rt)) != 0 ||
      (st = mb_spawn_string(rt, MAIN_CHUNK, "=moonbeam", &main_pid)) != 0) {
    fprintf(stderr, "%s: %s\n", cfg.progname, mb_strerror(st));
    return EXIT_FAILURE;
  }
  if (cli_repl) line_start(main_pid);
  mb_wait(rt, &status);
  line_stop();
  fflush(NULL);
  if (mb_stop(rt) == 0) mb_free(rt);
  return status;
}
