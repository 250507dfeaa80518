/* lenv.c — creating a process's lua_State: stock libraries adapted to processes. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "alloc.h"
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
    alloc_lua(ptr, osize, 0);
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
  q = alloc_lua(ptr, osize, nsize);
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

/* ================================================================ libraries on demand */

/*
** A process starts with `process` and a few base functions only; each other standard
** library opens the first time it is reached: as a global (the globals' __index), through
** require (package.preload), through a string method or string arithmetic (a stand-in
** metatable for strings), or when a message names it. Base functions enter _G the same
** way: they have no upvalues, so the C functions are found once in a scratch state and
** pushed as light C functions, which cost nothing until used. That saves most of a
** state's cost (about 17 µs and 16 KB of the 20 a state with every library has).
** Assigning a global of one of those names first opens it (so `string = nil` stays nil),
** and pairs(_G), getmetatable(_G), setmetatable(_G, ...) and opening debug open them all,
** so a program that looks at the globals as a whole sees what lua gives it; only rawget
** and next on _G can tell the difference. A host's top-level programs open everything.
*/

static int open_package(lua_State *L);
static void adapt_os(lua_State *L);

typedef struct stdlib {
  const char *name;
  lua_CFunction open;
  void (*adapt)(lua_State *L);   /* Moonbeam's changes, once it is open */
} stdlib;

static const stdlib LIBS[] = {
  {LUA_LOADLIBNAME, open_package, NULL},
  {LUA_STRLIBNAME, luaopen_string, NULL},
  {LUA_TABLIBNAME, luaopen_table, NULL},
  {LUA_MATHLIBNAME, luaopen_math, NULL},
  {LUA_COLIBNAME, luaopen_coroutine, lcoro_adapt_coroutine},
  {LUA_OSLIBNAME, luaopen_os, adapt_os},
  {LUA_IOLIBNAME, luaopen_io, NULL},
  {LUA_UTF8LIBNAME, luaopen_utf8, NULL},
  {LUA_DBLIBNAME, luaopen_debug, lcoro_adapt_debug},
};
enum { NLIBS = sizeof LIBS / sizeof LIBS[0], DEBUG_LIB = NLIBS - 1 };

static char LAZY_KEY;   /* registry[&LAZY_KEY]: the globals' metatable while libraries wait */

/* Base globals on demand (the ones Moonbeam replaces are set at once, see adapt_base);
** _VERSION is the last bit of proc->base_set. */
static const char *const BASE[] = {
  "assert", "collectgarbage", "dofile", "error", "ipairs", "load", "loadfile", "next",
  "pairs", "rawequal", "rawget", "rawlen", "rawset", "select", "tonumber", "tostring",
  "type", "warn"};
enum { NBASE = sizeof BASE / sizeof BASE[0], VERSION_BIT = NBASE, NEXT = 7 /* BASE[7] */ };
static lua_CFunction base_fn[NBASE];
static pthread_once_t base_once = PTHREAD_ONCE_INIT;

static void find_base(void) {
  lua_State *L = luaL_newstate();
  if (L == NULL) return;               /* base_fn[0] stays NULL: every setup fails */
  luaL_requiref(L, LUA_GNAME, luaopen_base, 1);
  for (int i = 0; i < NBASE; i++) {
    lua_getfield(L, -1, BASE[i]);
    base_fn[i] = lua_tocfunction(L, -1);
    lua_pop(L, 1);
  }
  lua_close(L);
}

static int base_index(const char *name) {
  for (int i = 0; i < NBASE; i++)
    if (strcmp(name, BASE[i]) == 0) return i;
  return strcmp(name, "_VERSION") == 0 ? VERSION_BIT : -1;
}

/* Puts base global b into the globals (at idx) unless it was put or assigned before. */
static void put_base(lua_State *L, int idx, int b) {
  proc *p = proc_of(L);
  if (p->base_set & (1u << b)) return;
  p->base_set |= 1u << b;
  idx = lua_absindex(L, idx);
  lua_pushstring(L, b == VERSION_BIT ? "_VERSION" : BASE[b]);
  if (b == VERSION_BIT) lua_pushliteral(L, LUA_VERSION);
  else lua_pushcfunction(L, base_fn[b]);
  lua_rawset(L, idx);
}

static int lib_index(const char *name) {
  if (strcmp(name, "require") == 0) return 0;   /* package's global */
  for (int i = 0; i < NLIBS; i++)
    if (strcmp(name, LIBS[i].name) == 0) return i;
  return -1;
}

static void open_all(lua_State *L);

/* Opens library i (if it is not open yet) and pushes it. */
static void open_lib(lua_State *L, int i) {
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  int open = lua_getfield(L, -1, LIBS[i].name) != LUA_TNIL;
  lua_remove(L, -2);
  if (open) return;
  lua_pop(L, 1);
  proc_of(L)->lib_opening++;           /* its own globals are not a program's assignments */
  luaL_requiref(L, LIBS[i].name, LIBS[i].open, 1);
  if (LIBS[i].adapt) LIBS[i].adapt(L);
  proc_of(L)->lib_opening--;
  if (i == DEBUG_LIB) open_all(L);   /* debug.getmetatable would show the stand-in */
}

/* Opens every library and takes the stand-in metatables away. */
static void open_all(lua_State *L) {
  for (int i = 0; i < NLIBS; i++) {
    open_lib(L, i);
    lua_pop(L, 1);
  }
  lua_pushglobaltable(L);
  for (int b = 0; b <= VERSION_BIT; b++) put_base(L, -1, b);
  if (!lua_getmetatable(L, -1)) {
    lua_pop(L, 1);
    return;
  }
  lua_rawgetp(L, LUA_REGISTRYINDEX, &LAZY_KEY);
  if (lua_rawequal(L, -1, -2)) {
    lua_pushnil(L);
    lua_setmetatable(L, -4);
  }
  lua_pop(L, 3);
}

/* If the value at idx is the globals table, open everything first. */
static void open_all_for(lua_State *L, int idx) {
  lua_pushglobaltable(L);
  int g = lua_rawequal(L, idx, -1);
  lua_pop(L, 1);
  if (g) open_all(L);
}

/* Opens the library or puts the base global named by the string at idx, if it is one. */
static void open_name(lua_State *L, int idx) {
  const char *k = lua_type(L, idx) == LUA_TSTRING ? lua_tostring(L, idx) : NULL;
  int i;
  if (k == NULL) return;
  if ((i = base_index(k)) >= 0) {
    put_base(L, 1, i);
  } else if ((i = lib_index(k)) >= 0) {
    open_lib(L, i);
    lua_pop(L, 1);
  }
}

/* __index of the globals: a library's or base global's name opens it. */
static int lazy_global(lua_State *L) {
  open_name(L, 2);
  lua_settop(L, 2);
  lua_rawget(L, 1);
  return 1;
}

/* __newindex of the globals: what the name stands for first, then the assignment. */
static int lazy_assign(lua_State *L) {
  if (!proc_of(L)->lib_opening) open_name(L, 2);
  lua_settop(L, 3);
  lua_rawset(L, 1);
  return 0;
}

/* __pairs of the globals: open everything, then iterate as pairs would. */
static int lazy_pairs(lua_State *L) {
  open_all(L);
  lua_pushcfunction(L, base_fn[NEXT]);   /* next */
  lua_pushvalue(L, 1);
  lua_pushnil(L);
  return 3;
}

void lenv_push_next(lua_State *L) {
  lua_pushcfunction(L, base_fn[NEXT]);
}

/* package.preload entry of every library: require "string" before anything opened it. */
static int lazy_require(lua_State *L) {
  int i = lib_index(luaL_checkstring(L, 1));
  if (i < 0) return luaL_error(L, "no standard library '%s'", lua_tostring(L, 1));
  open_lib(L, i);
  return 1;
}

/* The strings' stand-in metatable: the first method call or arithmetic on a string opens
** the string library (which installs the real metatable) and does it again. */
static int lazy_string_index(lua_State *L) {
  open_lib(L, 1);
  lua_pushvalue(L, 2);
  lua_gettable(L, -2);
  return 1;
}

static int lazy_string_arith(lua_State *L, int op) {
  open_lib(L, 1);
  lua_settop(L, op == LUA_OPUNM ? 1 : 2);
  lua_arith(L, op);
  return 1;
}

/* One plain C function per event: closures would cost memory in every process. */
#define ARITH(event, op) \
  static int lazy_##event(lua_State *L) { return lazy_string_arith(L, op); }
ARITH(add, LUA_OPADD)
ARITH(sub, LUA_OPSUB)
ARITH(mul, LUA_OPMUL)
ARITH(div, LUA_OPDIV)
ARITH(mod, LUA_OPMOD)
ARITH(pow, LUA_OPPOW)
ARITH(unm, LUA_OPUNM)
ARITH(idiv, LUA_OPIDIV)
#undef ARITH

static void string_stand_in(lua_State *L) {
  static const luaL_Reg mt[] = {
    {"__index", lazy_string_index}, {"__add", lazy_add}, {"__sub", lazy_sub},
    {"__mul", lazy_mul}, {"__div", lazy_div}, {"__mod", lazy_mod}, {"__pow", lazy_pow},
    {"__unm", lazy_unm}, {"__idiv", lazy_idiv}, {NULL, NULL}};
  lua_pushliteral(L, "");
  luaL_newlib(L, mt);
  lua_setmetatable(L, -2);
  lua_pop(L, 1);
}

/* getmetatable and setmetatable as base has them, except that on the globals they first
** open every library (so strict-mode modules see no stand-in), and getmetatable on a
** string opens the string library (getmetatable("").__index is the string table). */
static int l_getmetatable(lua_State *L) {
  luaL_checkany(L, 1);
  open_all_for(L, 1);
  if (lua_type(L, 1) == LUA_TSTRING) {
    open_lib(L, 1);
    lua_pop(L, 1);
  }
  if (!lua_getmetatable(L, 1)) {
    lua_pushnil(L);
    return 1;
  }
  luaL_getmetafield(L, 1, "__metatable");
  return 1;
}

static int l_setmetatable(lua_State *L) {
  int t = lua_type(L, 2);
  luaL_checktype(L, 1, LUA_TTABLE);
  luaL_argexpected(L, t == LUA_TNIL || t == LUA_TTABLE, 2, "nil or table");
  open_all_for(L, 1);
  if (luaL_getmetafield(L, 1, "__metatable") != LUA_TNIL)
    return luaL_error(L, "cannot change a protected metatable");
  lua_settop(L, 2);
  lua_setmetatable(L, 1);
  return 1;
}

/* ================================================================ package */

/* package, with the process's paths, the code server's searcher, and preload entries for
** `code`, the host's C libraries and the standard libraries not open yet. */
static int open_package(lua_State *L) {
  proc *p = proc_of(L);
  pathset *ps = p->paths;
  if ((ps && ps->path) || p->rt->cfg.no_env) {
    lua_pushboolean(L, 1);
    lua_setfield(L, LUA_REGISTRYINDEX, "LUA_NOENV");
  }
  luaopen_package(L);
  if (ps && ps->path) {
    lua_pushstring(L, ps->path);
    lua_setfield(L, -2, "path");
  }
  if (ps && ps->cpath) {
    lua_pushstring(L, ps->cpath);
    lua_setfield(L, -2, "cpath");
  }
  lua_getfield(L, -1, "preload");
  lua_pushcfunction(L, luaopen_code);
  lua_setfield(L, -2, "code");
  lua_pushcfunction(L, luaopen_net_core);
  lua_setfield(L, -2, "net.core");
  for (preload *pl = p->rt->preloads; pl; pl = pl->next) {
    lua_pushcfunction(L, pl->open);
    lua_setfield(L, -2, pl->name);
  }
  for (int i = 1; i < NLIBS; i++) {
    lua_pushcfunction(L, lazy_require);
    lua_setfield(L, -2, LIBS[i].name);
  }
  lua_pop(L, 1);
  code_install_searcher(L, -1);
  return 1;
}

/* ================================================================ the state */

static void adapt_os(lua_State *L) {
  lua_pushcfunction(L, l_os_exit);
  lua_setfield(L, -2, "exit");
}

static void adapt_base(lua_State *L) {
  static const luaL_Reg fns[] = {{"print", l_print}, {"getmetatable", l_getmetatable},
                                 {"setmetatable", l_setmetatable}, {NULL, NULL}};
  lua_pushglobaltable(L);
  luaL_setfuncs(L, fns, 0);
  lua_pushvalue(L, -1);
  lua_setfield(L, -2, LUA_GNAME);           /* _G._G */
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  lua_pushvalue(L, -2);
  lua_setfield(L, -2, LUA_GNAME);           /* package.loaded._G */
  lua_pop(L, 2);
}

/* The stand-in metatables, last: what setup itself puts in _G needs no lookups. */
static void stand_ins(lua_State *L) {
  lua_pushglobaltable(L);
  lua_createtable(L, 0, 3);                 /* the globals' stand-in metatable */
  lua_pushcfunction(L, lazy_global);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, lazy_assign);
  lua_setfield(L, -2, "__newindex");
  lua_pushcfunction(L, lazy_pairs);
  lua_setfield(L, -2, "__pairs");
  lua_pushvalue(L, -1);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &LAZY_KEY);
  lua_setmetatable(L, -2);
  lua_pop(L, 1);
  string_stand_in(L);
}

/* Everything that may raise (out of memory), run protected. */
static int setup(lua_State *L) {
  proc *p = proc_of(L);
  spawn_req *req = p->boot;
  if (req) {
    p->paths = req->paths;
    req->paths = NULL;
  }
  pthread_once(&base_once, find_base);
  if (base_fn[0] == NULL) return luaL_error(L, "not enough memory");
  adapt_base(L);
  luaL_requiref(L, "process", luaopen_process, 1);
  lua_pop(L, 1);
  lproc_open_terms(L);
  lcoro_open(L);
  stand_ins(L);
  /* a program the host started is a script as lua runs it: everything open */
  if (req && (req->kind == SPAWN_FILE || req->kind == SPAWN_STRING)) open_all(L);
  lua_newtable(L);
  p->qref = luaL_ref(L, LUA_REGISTRYINDEX);
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
