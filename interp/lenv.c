/* lenv.c — creating a process's lua_State: stock libraries adapted to processes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "code.h"
#include "lcoro.h"
#include "lenv.h"
#include "lnet.h"
#include "lproc.h"
#include "rt.h"

/* ================================================================ allocator */

/*
** Every process allocates through this, with its proc as ud, so p->mem is its heap size.
** Past max_heap the allocation fails and the process is marked to exit with "max_heap".
** While it unwinds it may go a little further (a quarter more), enough to report and die,
** not enough to let one huge allocation through.
*/
static void *proc_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  proc *p = ud;
  size_t old = ptr ? osize : 0;
  void *q;
  if (nsize == 0) {
    free(ptr);
    p->mem -= old;
    return NULL;
  }
  if (p->max_heap && nsize > old) {
    size_t want = p->mem - old + nsize;
    size_t limit = p->over_heap ? p->max_heap + p->max_heap / 4 + 65536 : p->max_heap;
    if (want > limit) {
      if (!p->over_heap) {
        p->over_heap = 1;
        proc_set_exit_string(p, "max_heap", 1);
      }
      return NULL;
    }
  }
  q = realloc(ptr, nsize);
  if (q) p->mem = p->mem - old + nsize;
  return q;
}

static int panic(lua_State *L) {
  const char *msg = lua_tostring(L, -1);
  fprintf(stderr, "moonbeam: PANIC: unprotected error in call to Lua API (%s)\n",
          msg ? msg : "error object is not a string");
  fflush(stderr);
  abort();
}

/* ================================================================ warnings */

/* lua_setwarnf handler: "@on"/"@off" switch warnings of this process, as in `lua`. */
static void warnf(void *ud, const char *msg, int tocont) {
  proc *p = ud;
  if (!p->warn_cont && !tocont && msg[0] == '@') {
    if (strcmp(msg, "@on") == 0) p->warn_on = 1;
    else if (strcmp(msg, "@off") == 0) p->warn_on = 0;
    return;
  }
  if (p->warn_on) {
    flockfile(stderr);
    if (!p->warn_cont) fputs("Lua warning: ", stderr);
    fputs(msg, stderr);
    if (!tocont) fputc('\n', stderr);
    fflush(stderr);
    funlockfile(stderr);
  }
  p->warn_cont = tocont;
}

/* ================================================================ print, os.exit */

/* print as stock Lua, but the whole line goes out in one write: never mixed with others. */
static int l_print(lua_State *L) {
  int n = lua_gettop(L);
  luaL_Buffer b;
  size_t len;
  const char *s;
  luaL_buffinit(L, &b);
  for (int i = 1; i <= n; i++) {
    if (i > 1) luaL_addchar(&b, '\t');
    luaL_tolstring(L, i, NULL);
    luaL_addvalue(&b);
  }
  luaL_addchar(&b, '\n');
  luaL_pushresult(&b);
  s = lua_tolstring(L, -1, &len);
  rt_write(stdout, s, len);
  return 0;
}

static int exit_k(lua_State *L, int status, lua_KContext ctx) {
  (void)L;
  (void)status;
  (void)ctx;
  return 0;
}

/* os.exit halts the whole runtime with that status; the calling process stops here. */
static int l_os_exit(lua_State *L) {
  proc *p = proc_of(L);
  int status;
  if (lua_isboolean(L, 1)) status = lua_toboolean(L, 1) ? EXIT_SUCCESS : EXIT_FAILURE;
  else status = (int)luaL_optinteger(L, 1, EXIT_SUCCESS);
  fflush(NULL);
  rt_halt(p->rt, status);
  proc_set_exit_string(p, "normal", 1);
  if (!lua_isyieldable(L)) return proc_raise_killed(L);
  p->yield = Y_EXIT;
  return lua_yieldk(L, 0, 0, exit_k);
}

/* ================================================================ modules */

static void set_paths(lua_State *L, const char *path, const char *cpath) {
  lua_getglobal(L, LUA_LOADLIBNAME);
  if (path) {
    lua_pushstring(L, path);
    lua_setfield(L, -2, "path");
  }
  if (cpath) {
    lua_pushstring(L, cpath);
    lua_setfield(L, -2, "cpath");
  }
  lua_getfield(L, -1, "preload");
  lua_pushcfunction(L, luaopen_code);
  lua_setfield(L, -2, "code");
  lua_pushcfunction(L, luaopen_net_core);
  lua_setfield(L, -2, "net.core");
  for (preload *pl = proc_of(L)->rt->preloads; pl; pl = pl->next) {
    lua_pushcfunction(L, pl->open);
    lua_setfield(L, -2, pl->name);
  }
  lua_pop(L, 2);
}

static void replace_stock(lua_State *L) {
  lua_pushcfunction(L, l_print);
  lua_setglobal(L, "print");
  lua_getglobal(L, LUA_OSLIBNAME);
  lua_pushcfunction(L, l_os_exit);
  lua_setfield(L, -2, "exit");
  lua_pop(L, 1);
}

/* Everything that may raise (out of memory), run protected. */
static int setup(lua_State *L) {
  proc *p = proc_of(L);
  spawn_req *req = p->boot;
  const char *path = req ? req->path : NULL, *cpath = req ? req->cpath : NULL;
  if (path || p->rt->cfg.no_env) {
    lua_pushboolean(L, 1);
    lua_setfield(L, LUA_REGISTRYINDEX, "LUA_NOENV");
  }
  luaL_openlibs(L);
  set_paths(L, path, cpath);
  code_install_searcher(L);
  replace_stock(L);
  luaL_requiref(L, "process", luaopen_process, 1);
  lua_pop(L, 1);
  lproc_open_terms(L);
  lua_newtable(L);
  p->qref = luaL_ref(L, LUA_REGISTRYINDEX);
  lcoro_open(L);
  p->body = lua_newthread(L);
  luaL_ref(L, LUA_REGISTRYINDEX);
  return 0;
}

int lenv_open(proc *p) {
  lua_State *L = lua_newstate(proc_alloc, p);
  if (L == NULL) return MB_ENOMEM;
  *(proc **)lua_getextraspace(L) = p;
  p->L = L;
  p->qhead = p->qtail = 1;
  p->warn_on = p->rt->cfg.warnings;
  lua_atpanic(L, panic);
  lua_setwarnf(L, warnf, p);
  if (proc_protect(p, setup, NULL) != LUA_OK) {
    lua_close(L);
    p->L = p->body = NULL;
    return MB_ENOMEM;
  }
  p->cur = p->body;
  return 0;
}
