/* code.c — the code server: compiled modules by version, require through it, hot reload. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "code.h"
#include "lcoro.h"
#include "embed.h"
#include "lproc.h"
#include "pid.h"
#include "rt.h"
#include "u64map.h"

/* ================================================================ the table */

typedef struct cver {
  uint32_t vsn;
  unsigned char *bc;          /* lua_dump of the compiled chunk */
  size_t len;
  char *chunkname;            /* "@path" or "@path (vN)" */
  u64map users;               /* pids that have loaded it, or still run its functions */
} cver;

typedef struct cmod {
  char *name, *path;          /* path: the file it came from ("lualib/x.lua" if embedded) */
  cver *cur, *old;
  struct cmod *next;
} cmod;

struct code {
  pthread_mutex_t lock;
  cmod *mods;
};

/* What a process holds of a module (proc->mods): the version it loaded, and an older one
** whose functions may still be on its stack (0: none). */
typedef struct pmod {
  cmod *m;
  uint32_t vsn, old_vsn;
  int stuck;                  /* switching from vsn failed: it keeps running that version */
} pmod;

int code_init(mb_runtime *rt) {
  struct code *c = calloc(1, sizeof *c);
  if (c == NULL) return MB_ENOMEM;
  pthread_mutex_init(&c->lock, NULL);
  atomic_init(&rt->code_epoch, 1);
  rt->code = c;
  return 0;
}

static void cver_free(cver *v) {
  if (v == NULL) return;
  free(v->bc);
  free(v->chunkname);
  u64map_free(&v->users);
  free(v);
}

void code_free(mb_runtime *rt) {
  struct code *c = rt->code;
  if (c == NULL) return;
  while (c->mods) {
    cmod *m = c->mods;
    c->mods = m->next;
    cver_free(m->cur);
    cver_free(m->old);
    free(m->name);
    free(m->path);
    free(m);
  }
  pthread_mutex_destroy(&c->lock);
  free(c);
  rt->code = NULL;
}

static cmod *find(struct code *c, const char *name) {
  for (cmod *m = c->mods; m; m = m->next)
    if (strcmp(m->name, name) == 0) return m;
  return NULL;
}

static cver *version_of(cmod *m, uint32_t vsn) {
  if (m->cur && m->cur->vsn == vsn) return m->cur;
  if (m->old && m->old->vsn == vsn) return m->old;
  return NULL;
}

static void user_add(cver *v, uint64_t pid) {
  if (v) u64map_put(&v->users, pid, 1);
}

static void user_remove(cver *v, uint64_t pid) {
  size_t i;
  if (v && (i = u64map_find(&v->users, pid)) != (size_t)-1) u64map_del(&v->users, i);
}

/* The pids of a version's users (a malloc'd array), to signal outside the lock. */
static uint64_t *users_of(cver *v, size_t *n) {
  uint64_t *pids;
  *n = 0;
  if (v == NULL || v->users.n == 0) return NULL;
  pids = malloc(v->users.n * sizeof *pids);
  for (size_t i = 0; pids && i < v->users.cap; i++)
    if (v->users.keys[i]) pids[(*n)++] = v->users.keys[i];
  return pids;
}

/* Send the code-check signal to each pid, then free the array. With a dropped version (v),
** those that still run it die; without (NULL), they are only woken to pass a safe point.
** The signal carries the version number and "chunkname\0module name". */
static void check_all(mb_runtime *rt, uint64_t *pids, size_t n, const cmod *m, const cver *v) {
  size_t a = v ? strlen(v->chunkname) + 1 : 0, b = v ? strlen(m->name) + 1 : 0;
  char *data = v ? malloc(a + b) : NULL;
  if (data) {
    memcpy(data, v->chunkname, a);
    memcpy(data + a, m->name, b);
  }
  for (size_t i = 0; i < n; i++)
    proc_deliver(rt, pids[i], mbox_item_new(SIG_CODECHECK, 0, data ? v->vsn : 0, data,
                                            data ? a + b : 0));
  free(data);
  free(pids);
}

/* ================================================================ versions */

static int dump_writer(lua_State *L, const void *p, size_t n, void *ud) {
  (void)L;
  return msg_buf_add(ud, p, n);
}

/* A version from the function on top of L (left there). NULL if out of memory. */
static cver *new_version(lua_State *L, uint32_t vsn, const char *chunkname) {
  cver *v = calloc(1, sizeof *v);
  msg_buf b;
  msg_buf_init(&b);
  if (v == NULL || lua_dump(L, dump_writer, &b, 0) != 0 || (v->chunkname = strdup(chunkname)) == NULL) {
    msg_buf_free(&b);
    free(v);
    return NULL;
  }
  v->vsn = vsn;
  v->bc = b.p;
  v->len = b.len;
  return v;
}

/* Loads version v's bytecode on L (copied out under the lock). 0, or an error pushed. */
static int load_version(lua_State *L, const unsigned char *bc, size_t len, const char *name) {
  int st = luaL_loadbufferx(L, (const char *)bc, len, name, "b");
  return st;
}

/* ================================================================ the process's side */

static pmod *pmod_find(proc *p, cmod *m) {
  pmod *v = p->mods;
  for (size_t i = 0; i < p->nmods; i++)
    if (v[i].m == m) return &v[i];
  return NULL;
}

static void pmod_set(proc *p, cmod *m, uint32_t vsn) {
  pmod *r = pmod_find(p, m);
  if (r == NULL) {
    pmod *v = realloc(p->mods, (p->nmods + 1) * sizeof *v);
    if (v == NULL) return;
    p->mods = v;
    r = &v[p->nmods++];
    r->m = m;
    r->old_vsn = 0;
  }
  r->vsn = vsn;
  r->stuck = 0;
}

void code_forget(proc *p) {
  struct code *c = p->rt->code;
  pmod *v = p->mods;
  pthread_mutex_lock(&c->lock);
  for (size_t i = 0; i < p->nmods; i++) {
    user_remove(v[i].m->cur, p->pid);
    user_remove(v[i].m->old, p->pid);
  }
  pthread_mutex_unlock(&c->lock);
  free(p->mods);
  p->mods = NULL;
  p->nmods = 0;
}

/* ================================================================ require */

typedef struct fetched {
  unsigned char *bc;
  size_t len;
  uint32_t vsn;
  char *path;
  cmod *m;
} fetched;

/* Copy the current version of name, and record p as its user. 0 if there is none. */
static int fetch(proc *p, const char *name, fetched *f) {
  struct code *c = p->rt->code;
  int found = 0;
  pthread_mutex_lock(&c->lock);
  cmod *m = find(c, name);
  if (m && m->cur && (f->bc = malloc(m->cur->len)) != NULL && (f->path = strdup(m->path))) {
    memcpy(f->bc, m->cur->bc, m->cur->len);
    f->len = m->cur->len;
    f->vsn = m->cur->vsn;
    f->m = m;
    user_add(m->cur, p->pid);
    found = 1;
  } else if (m && m->cur) {
    free(f->bc);
    f->bc = NULL;
  }
  pthread_mutex_unlock(&c->lock);
  return found;
}

/* Publish the chunk on top of L as version 1 of name, unless a version exists already
** (two processes required it at once: the first one wins). */
static void publish_first(proc *p, lua_State *L, const char *name, const char *path) {
  struct code *c = p->rt->code;
  size_t n = strlen(path) + 2;
  char *chunkname = malloc(n);
  cver *v = NULL;
  if (chunkname) {
    snprintf(chunkname, n, "@%s", path);
    lua_pushvalue(L, -2);   /* the chunk, below its path */
    v = new_version(L, 1, chunkname);
    lua_pop(L, 1);
    free(chunkname);
  }
  if (v == NULL) return;
  pthread_mutex_lock(&c->lock);
  if (find(c, name) == NULL) {
    cmod *m = calloc(1, sizeof *m);
    if (m && (m->name = strdup(name)) && (m->path = strdup(path))) {
      m->cur = v;
      m->next = c->mods;
      c->mods = m;
      v = NULL;
    } else if (m) {
      free(m->name);
      free(m);
    }
  }
  pthread_mutex_unlock(&c->lock);
  cver_free(v);
}

/* Compile a module's source: a file on package.path, else an embedded module. Pushes the
** chunk and its path (returns 1), or the searcher's "not found" message (returns 0). */
static int compile_source(lua_State *L, const char *name) {
  lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  lua_getfield(L, -1, LUA_LOADLIBNAME);
  lua_getfield(L, -1, "searchpath");
  lua_pushstring(L, name);
  lua_getfield(L, -3, "path");
  lua_call(L, 2, 2);
  lua_replace(L, -4);
  lua_replace(L, -4);
  lua_pop(L, 1);   /* stack: path-or-nil, message */
  if (!lua_isnil(L, -2)) {
    const char *path = lua_tostring(L, -2);
    lua_pop(L, 1);
    if (luaL_loadfilex(L, path, NULL) != LUA_OK)
      luaL_error(L, "error loading module '%s' from file '%s':\n\t%s", name, path,
                 lua_tostring(L, -1));
    lua_insert(L, -2);
    return 1;
  }
  for (size_t i = 0; i < embed_count; i++) {
    const embed_module *e = &embed_modules[i];
    if (strcmp(e->name, name) != 0) continue;
    lua_pop(L, 2);
    if (luaL_loadbuffer(L, e->src, e->len, e->chunkname) != LUA_OK)
      luaL_error(L, "error loading module '%s' from '%s':\n\t%s", name, e->chunkname + 1,
                 lua_tostring(L, -1));
    lua_pushstring(L, e->chunkname + 1);
    return 1;
  }
  lua_pushfstring(L, "%s\n\tno embedded module '%s'", lua_tostring(L, -1), name);
  lua_replace(L, -3);
  lua_pop(L, 1);
  return 0;
}

/*
** package.searchers entry: a Lua module through the code server. The first process to need
** it compiles and publishes it; every process loads the published bytecode.
*/
static int searcher(lua_State *L) {
  proc *p = proc_of(L);
  const char *name = luaL_checkstring(L, 1);
  fetched f = {0};
  if (!fetch(p, name, &f)) {
    if (!compile_source(L, name)) return 1;
    publish_first(p, L, name, lua_tostring(L, -1));
    lua_pop(L, 2);
    if (!fetch(p, name, &f)) return luaL_error(L, "cannot load module '%s'", name);
  }
  int st = load_version(L, f.bc, f.len, name);
  free(f.bc);
  if (st != LUA_OK) {
    free(f.path);
    return lua_error(L);
  }
  pmod_set(p, f.m, f.vsn);
  lua_pushstring(L, f.path);
  free(f.path);
  return 2;
}

void code_install_searcher(lua_State *L) {
  lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  lua_getfield(L, -1, LUA_LOADLIBNAME);
  lua_getfield(L, -1, "searchers");
  lua_pushcfunction(L, searcher);
  lua_rawseti(L, -2, 2);   /* in place of the Lua-file searcher */
  lua_pop(L, 3);
}

/* ================================================================ switching */

static int frames_in(lua_State *co, void *chunkname) {
  lua_Debug ar;
  for (int level = 0; co && lua_getstack(co, level, &ar); level++)
    if (lua_getinfo(co, "S", &ar) && strcmp(ar.source, chunkname) == 0) return 1;
  return 0;
}

static int on_stack(proc *p, const char *chunkname) {
  if (p->L == NULL) return 0;
  return frames_in(p->body, (void *)chunkname) || frames_in(p->cur, (void *)chunkname) ||
         lcoro_each_thread(p->L, frames_in, (void *)chunkname);
}

/* A process that has not reached a safe point since the version it has was superseded is not
** running it (unless its functions are on a stack): it switches at that safe point. One whose
** switch failed is. */
int code_runs(proc *p, const char *name, uint32_t vsn, const char *chunkname) {
  for (size_t i = 0; i < p->nmods; i++) {
    pmod *r = &p->mods[i];
    if (r->stuck && r->vsn == vsn && strcmp(r->m->name, name) == 0) return 1;
  }
  return on_stack(p, chunkname);
}

/* Make the table at `into` hold exactly the fields (and metatable) of the table at `from`. */
static void replace_fields(lua_State *L, int into, int from) {
  lua_pushnil(L);
  while (lua_next(L, into)) {
    lua_pop(L, 1);
    lua_pushvalue(L, -1);
    if (lua_rawget(L, from) == LUA_TNIL) {
      lua_pushvalue(L, -2);
      lua_pushnil(L);
      lua_rawset(L, into);   /* clearing fields while traversing is allowed */
    }
    lua_pop(L, 1);
  }
  lua_pushnil(L);
  while (lua_next(L, from)) {
    lua_pushvalue(L, -2);
    lua_insert(L, -2);
    lua_rawset(L, into);
  }
  if (!lua_getmetatable(L, from)) lua_pushnil(L);
  lua_setmetatable(L, into);
}

/* Protected: run the new chunk (on the stack with name and path) and update the module. */
static int switch_module(lua_State *L) {
  const char *name = lua_tostring(L, 2);
  lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  int loaded = lua_gettop(L);
  lua_pushvalue(L, 1);
  lua_pushvalue(L, 2);
  lua_pushvalue(L, 3);
  lua_call(L, 2, 1);
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    lua_pushboolean(L, 1);
  }
  int fresh = lua_gettop(L);
  if (lua_getfield(L, loaded, name) == LUA_TTABLE && lua_istable(L, fresh)) {
    replace_fields(L, lua_gettop(L), fresh);
  } else {
    lua_pushvalue(L, fresh);
    lua_setfield(L, loaded, name);
  }
  return 0;
}

static void warn_kept(proc *p, const char *name, uint32_t vsn, const char *err) {
  char pid[64];
  const char *fmt = "moonbeam: process %s keeps version %u of module '%s': %s\n";
  size_t size;
  char *line;
  if (err == NULL) err = "?";
  term_format(p->pid, pid, sizeof pid);
  size = strlen(fmt) + strlen(pid) + strlen(name) + strlen(err) + 16;
  if ((line = malloc(size)) == NULL) return;
  int n = snprintf(line, size, fmt, pid, vsn, name, err);
  if (n > 0) rt_write(stderr, line, (size_t)n < size ? (size_t)n : size - 1);
  free(line);
}

/* Switch p's copy of module m from version `from` to the current one. The chunk runs in
** p and may require more modules (p->mods grows): records are found again afterwards. */
static void switch_to_current(lua_State *L, proc *p, cmod *m, uint32_t from) {
  struct code *c = p->rt->code;
  fetched f = {0};
  pthread_mutex_lock(&c->lock);
  cver *old = version_of(m, from);
  char *old_chunk = old ? strdup(old->chunkname) : NULL;
  pthread_mutex_unlock(&c->lock);
  if (!fetch(p, m->name, &f)) {
    free(old_chunk);
    return;
  }
  lua_pushcfunction(L, switch_module);
  int st = load_version(L, f.bc, f.len, m->name);
  free(f.bc);
  if (st == LUA_OK) {
    lua_pushstring(L, m->name);
    lua_pushstring(L, f.path);
    st = lua_pcall(L, 3, 0, 0);
  } else {
    lua_remove(L, -2);   /* switch_module: only the error stays */
  }
  free(f.path);
  pthread_mutex_lock(&c->lock);
  pmod *r = pmod_find(p, m);
  if (st != LUA_OK) {
    user_remove(version_of(m, f.vsn), p->pid);
    if (r) r->stuck = 1;
  } else if (r) {
    r->vsn = f.vsn;
    r->stuck = 0;
    if (old_chunk && on_stack(p, old_chunk)) {   /* still runs it */
      if (r->old_vsn == 0) p->old_code++;
      r->old_vsn = from;
    } else {
      user_remove(version_of(m, from), p->pid);
    }
  }
  pthread_mutex_unlock(&c->lock);
  if (st != LUA_OK) {
    warn_kept(p, m->name, from, lua_tostring(L, -1));
    lua_pop(L, 1);
  }
  free(old_chunk);
}

/* A process that still ran an older version: has it left those functions behind? */
static void recheck_old(proc *p, pmod *r) {
  struct code *c = p->rt->code;
  pthread_mutex_lock(&c->lock);
  cver *old = version_of(r->m, r->old_vsn);
  if (old == NULL || !on_stack(p, old->chunkname)) {
    user_remove(old, p->pid);
    r->old_vsn = 0;
    p->old_code--;
  }
  pthread_mutex_unlock(&c->lock);
}

void code_safe_point(lua_State *L, proc *p) {
  struct code *c = p->rt->code;
  uint64_t epoch = atomic_load(&p->rt->code_epoch);
  for (size_t i = 0; i < p->nmods; i++)
    if (p->mods[i].old_vsn) recheck_old(p, &p->mods[i]);
  if (epoch == p->code_epoch) return;
  p->code_epoch = epoch;
  for (size_t i = 0; i < p->nmods; i++) {
    cmod *m = p->mods[i].m;
    uint32_t vsn = p->mods[i].vsn;
    pthread_mutex_lock(&c->lock);
    int stale = m->cur && m->cur->vsn != vsn;
    pthread_mutex_unlock(&c->lock);
    if (stale) switch_to_current(L, p, m, vsn);
  }
}

/* ================================================================ reload and purge */

static int read_file(lua_State *L, const char *path) {
  FILE *f = fopen(path, "rb");
  luaL_Buffer b;
  size_t n;
  if (f == NULL) return 0;
  luaL_buffinit(L, &b);
  do {
    char *dst = luaL_prepbuffer(&b);
    n = fread(dst, 1, LUAL_BUFFERSIZE, f);
    luaL_addsize(&b, n);
  } while (n == LUAL_BUFFERSIZE);
  fclose(f);
  luaL_pushresult(&b);
  return 1;
}

/* The file a module comes from: its recorded path, else where require would find it. */
static const char *source_path(lua_State *L, const char *name) {
  struct code *c = proc_of(L)->rt->code;
  pthread_mutex_lock(&c->lock);
  cmod *m = find(c, name);
  if (m) lua_pushstring(L, m->path);
  pthread_mutex_unlock(&c->lock);
  if (m) return lua_tostring(L, -1);
  lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  lua_getfield(L, -1, LUA_LOADLIBNAME);
  lua_getfield(L, -1, "searchpath");
  lua_pushstring(L, name);
  lua_getfield(L, -3, "path");
  lua_call(L, 2, 1);
  lua_replace(L, -3);
  lua_pop(L, 1);
  return lua_tostring(L, -1);
}

static uint32_t next_version(struct code *c, const char *name) {
  uint32_t vsn;
  pthread_mutex_lock(&c->lock);
  cmod *m = find(c, name);
  vsn = m && m->cur ? m->cur->vsn + 1 : 1;
  pthread_mutex_unlock(&c->lock);
  return vsn;
}

/*
** Publish v as the current version of name (path); the version before becomes the old one,
** and the users of the one before that are killed (at most two versions live). Fails if
** another reload came first. Returns 0, or MB_EBUSY / MB_ENOMEM.
*/
static int publish(mb_runtime *rt, const char *name, const char *path, cver *v) {
  struct code *c = rt->code;
  uint64_t *doomed = NULL;
  size_t n = 0;
  int st = 0;
  pthread_mutex_lock(&c->lock);
  cmod *m = find(c, name);
  if (m && m->cur && m->cur->vsn + 1 != v->vsn) {
    st = MB_EBUSY;
  } else if (m == NULL) {
    m = calloc(1, sizeof *m);
    if (m && (m->name = strdup(name)) && (m->path = strdup(path))) {
      m->next = c->mods;
      c->mods = m;
    } else {
      if (m) free(m->name);
      free(m);
      m = NULL;
      st = MB_ENOMEM;
    }
  }
  cver *dropped = NULL;
  uint64_t *idle = NULL;
  size_t nidle = 0;
  if (st == 0) {
    doomed = users_of(m->old, &n);
    dropped = m->old;
    idle = users_of(m->cur, &nidle);
    m->old = m->cur;
    m->cur = v;
    atomic_fetch_add(&rt->code_epoch, 1);
  }
  pthread_mutex_unlock(&c->lock);
  check_all(rt, doomed, n, m, dropped);   /* m's name stays: modules are never freed */
  check_all(rt, idle, nidle, m, NULL);
  cver_free(dropped);
  return st;
}

/* code.reload(name) → new version | nil, err. Compiles the file again and runs the chunk
** here first: if either fails, nothing changes. */
static int fail(lua_State *L, const char *fmt, const char *arg) {
  luaL_pushfail(L);
  lua_pushfstring(L, fmt, arg);
  return 2;
}

/* Returns nil and the error on top of L. */
static int fail_with_top(lua_State *L) {
  luaL_pushfail(L);
  lua_insert(L, -2);
  return 2;
}

static int l_reload(lua_State *L) {
  proc *p = proc_of(L);
  const char *name = luaL_checkstring(L, 1);
  const char *path = source_path(L, name);
  size_t len;
  if (path == NULL) return fail(L, "module '%s' not found", name);
  if (!read_file(L, path)) return fail(L, "cannot read '%s'", path);
  uint32_t vsn = next_version(p->rt->code, name);
  const char *chunkname = vsn == 1 ? lua_pushfstring(L, "@%s", path)
                                   : lua_pushfstring(L, "@%s (v%d)", path, (int)vsn);
  const char *src = lua_tolstring(L, -2, &len);
  if (luaL_loadbufferx(L, src, len, chunkname, "t") != LUA_OK) return fail_with_top(L);
  lua_pushvalue(L, -1);
  lua_pushstring(L, name);
  lua_pushstring(L, path);
  if (lua_pcall(L, 2, 1, 0) != LUA_OK) return fail_with_top(L);
  if (!lua_istable(L, -1))   /* the processes holding the module table need one to update */
    return fail(L, "the new version does not return a module table (it returns %s)",
                luaL_typename(L, -1));
  lua_pop(L, 1);
  cver *v = new_version(L, vsn, chunkname);
  if (v == NULL) return luaL_error(L, "not enough memory");
  int st = publish(p->rt, name, path, v);
  if (st != 0) {
    cver_free(v);
    return fail(L, "%s", st == MB_EBUSY ? "reloaded by another process meanwhile" : mb_strerror(st));
  }
  lua_pushinteger(L, vsn);
  return 1;
}

/* code.purge(name): kill the users of the old version and drop it; true if any was killed.
** code.soft_purge(name): drop it only if nobody uses it; false otherwise. */
static int purge(lua_State *L, int soft) {
  proc *p = proc_of(L);
  struct code *c = p->rt->code;
  const char *name = luaL_checkstring(L, 1);
  uint64_t *doomed = NULL;
  size_t n = 0;
  int result = 1;
  cver *dropped = NULL;
  pthread_mutex_lock(&c->lock);
  cmod *m = find(c, name);
  if (m && m->old) {
    if (soft && m->old->users.n > 0) {
      result = 0;
    } else {
      doomed = users_of(m->old, &n);
      dropped = m->old;
      m->old = NULL;
    }
  }
  pthread_mutex_unlock(&c->lock);
  if (!soft) result = n > 0;
  if (dropped) check_all(p->rt, doomed, n, m, dropped);
  cver_free(dropped);
  lua_pushboolean(L, result);
  return 1;
}

static int l_purge(lua_State *L) { return purge(L, 0); }
static int l_soft_purge(lua_State *L) { return purge(L, 1); }

/* ================================================================ queries */

static int l_version(lua_State *L) {
  struct code *c = proc_of(L)->rt->code;
  const char *name = luaL_checkstring(L, 1);
  pthread_mutex_lock(&c->lock);
  cmod *m = find(c, name);
  lua_Integer vsn = m && m->cur ? (lua_Integer)m->cur->vsn : 0;
  pthread_mutex_unlock(&c->lock);
  if (vsn) lua_pushinteger(L, vsn);
  else lua_pushnil(L);
  return 1;
}

/* The version of name this process runs (nil if it has not loaded it). */
static int l_loaded_version(lua_State *L) {
  proc *p = proc_of(L);
  const char *name = luaL_checkstring(L, 1);
  for (size_t i = 0; i < p->nmods; i++)
    if (strcmp(p->mods[i].m->name, name) == 0) {
      lua_pushinteger(L, p->mods[i].vsn);
      return 1;
    }
  lua_pushnil(L);
  return 1;
}

static int l_which(lua_State *L) {
  struct code *c = proc_of(L)->rt->code;
  const char *name = luaL_checkstring(L, 1);
  pthread_mutex_lock(&c->lock);
  cmod *m = find(c, name);
  char *path = m ? strdup(m->path) : NULL;
  pthread_mutex_unlock(&c->lock);
  if (path) lua_pushstring(L, path);
  else lua_pushnil(L);
  free(path);
  return 1;
}

typedef struct entry {
  char *name, *path;
  uint32_t vsn;
} entry;

static int push_entries(lua_State *L) {
  entry *v = lua_touserdata(L, 1);
  size_t n = (size_t)lua_tointeger(L, 2);
  lua_createtable(L, (int)n, 0);
  for (size_t i = 0; i < n; i++) {
    lua_createtable(L, 0, 3);
    lua_pushstring(L, v[i].name);
    lua_setfield(L, -2, "name");
    lua_pushinteger(L, v[i].vsn);
    lua_setfield(L, -2, "version");
    lua_pushstring(L, v[i].path);
    lua_setfield(L, -2, "file");
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  return 1;
}

/* code.loaded() → array of {name =, version =, file =}. */
static int l_loaded(lua_State *L) {
  struct code *c = proc_of(L)->rt->code;
  entry *v = NULL;
  size_t n = 0, cap = 0;
  int st;
  pthread_mutex_lock(&c->lock);
  for (cmod *m = c->mods; m; m = m->next) cap++;
  v = calloc(cap + 1, sizeof *v);
  for (cmod *m = c->mods; v && m; m = m->next)
    if (m->cur) v[n++] = (entry){strdup(m->name), strdup(m->path), m->cur->vsn};
  pthread_mutex_unlock(&c->lock);
  lua_pushcfunction(L, push_entries);
  lua_pushlightuserdata(L, v);
  lua_pushinteger(L, (lua_Integer)n);
  st = lua_pcall(L, 2, 1, 0);
  for (size_t i = 0; i < n; i++) {
    free(v[i].name);
    free(v[i].path);
  }
  free(v);
  if (st != LUA_OK) return lua_error(L);
  return 1;
}

/* code.check_process_code(pid, name): does pid still run the old version's code? */
static int l_check_process_code(lua_State *L) {
  struct code *c = proc_of(L)->rt->code;
  uint64_t pid = lua_islightuserdata(L, 1) ? (uint64_t)(uintptr_t)lua_touserdata(L, 1) : 0;
  const char *name = luaL_checkstring(L, 2);
  int in_old = 0;
  luaL_argexpected(L, term_ispid(pid), 1, "pid");
  pthread_mutex_lock(&c->lock);
  cmod *m = find(c, name);
  if (m && m->old) in_old = u64map_find(&m->old->users, pid) != (size_t)-1;
  pthread_mutex_unlock(&c->lock);
  lua_pushboolean(L, in_old);
  return 1;
}

/* code.users(name) → how many processes use the current version, and the old one. */
static int l_users(lua_State *L) {
  struct code *c = proc_of(L)->rt->code;
  const char *name = luaL_checkstring(L, 1);
  lua_Integer cur = 0, old = 0;
  pthread_mutex_lock(&c->lock);
  cmod *m = find(c, name);
  if (m && m->cur) cur = (lua_Integer)m->cur->users.n;
  if (m && m->old) old = (lua_Integer)m->old->users.n;
  pthread_mutex_unlock(&c->lock);
  lua_pushinteger(L, cur);
  lua_pushinteger(L, old);
  return 2;
}

/* code.switch(): pass a safe point now (switch this process to reloaded modules). */
static int l_switch(lua_State *L) {
  code_safe_point(L, proc_of(L));
  return 0;
}

/* code.available() → the names of the modules compiled into the binary. */
static int l_available(lua_State *L) {
  lua_createtable(L, (int)embed_count, 0);
  for (size_t i = 0; i < embed_count; i++) {
    lua_pushstring(L, embed_modules[i].name);
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  return 1;
}

static int l_epoch(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)atomic_load(&proc_of(L)->rt->code_epoch));
  return 1;
}

int luaopen_code(lua_State *L) {
  static const luaL_Reg fns[] = {
    {"reload", l_reload}, {"version", l_version}, {"loaded_version", l_loaded_version},
    {"loaded", l_loaded}, {"which", l_which}, {"purge", l_purge},
    {"soft_purge", l_soft_purge}, {"check_process_code", l_check_process_code},
    {"epoch", l_epoch}, {"users", l_users}, {"switch", l_switch},
    {"available", l_available}, {NULL, NULL}};
  luaL_newlib(L, fns);
  return 1;
}
