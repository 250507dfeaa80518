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

/* The pids of a version's users in *pids (malloc'd; NULL if none), to signal outside the
** lock. 0, or MB_ENOMEM. */
static int users_of(const cver *v, uint64_t **pids, size_t *n) {
  *pids = NULL;
  *n = 0;
  if (v == NULL || v->users.n == 0) return 0;
  if ((*pids = malloc(v->users.n * sizeof **pids)) == NULL) return MB_ENOMEM;
  for (size_t i = 0; i < v->users.cap; i++)
    if (v->users.keys[i]) (*pids)[(*n)++] = v->users.keys[i];
  return 0;
}

/*
** The code-check signal. Without data it wakes a process to pass a safe point. With data
** it asks about version `ref` of a module:
**   u64 answer ref | u8 mode | chunk name \0 | module name \0
** mode CHECK_KILL (the version is dropped: a process still running it dies, "killed") or
** CHECK_ASK; with an answer ref, the process answers {answer ref, runs} to the sender.
*/
enum { CHECK_KILL = 'k', CHECK_ASK = 'a' };

typedef struct check {
  unsigned char *data;       /* NULL: only wake */
  size_t len;
  uint32_t vsn;
} check;

/* The question about version v of m (under the code lock). 0, or MB_ENOMEM. */
static int check_about(check *q, const cmod *m, const cver *v, int mode, uint64_t answer) {
  size_t a = strlen(v->chunkname) + 1, b = strlen(m->name) + 1;
  q->len = 9 + a + b;
  if ((q->data = malloc(q->len)) == NULL) return MB_ENOMEM;
  memcpy(q->data, &answer, 8);
  q->data[8] = (unsigned char)mode;
  memcpy(q->data + 9, v->chunkname, a);
  memcpy(q->data + 9 + a, m->name, b);
  q->vsn = v->vsn;
  return 0;
}

/* Send the signal to each pid (from `from`), then free the array and the question. */
static void check_all(mb_runtime *rt, uint64_t *pids, size_t n, check *q, uint64_t from) {
  for (size_t i = 0; i < n; i++)
    proc_deliver(rt, pids[i], mbox_item_new(SIG_CODECHECK, from, q->data ? q->vsn : 0, q->data,
                                            q->data ? q->len : 0));
  free(q->data);
  free(pids);
}

static void answer(mb_runtime *rt, const mbox_item *m, uint64_t from, int runs) {
  uint64_t ref;
  msg_buf b;
  memcpy(&ref, m->data, 8);
  if (ref == 0 || m->from == 0) return;
  msg_buf_init(&b);
  if (msgb_count(&b, 1) == 0 && msgb_table(&b, 2, 0) == 0 && msgb_term(&b, ref) == 0 &&
      msgb_bool(&b, runs) == 0)
    proc_deliver(rt, m->from, mbox_item_new(SIG_MSG, from, 0, b.p, b.len));
  msg_buf_free(&b);
}

static int code_runs(proc *p, const char *name, uint32_t vsn, const char *chunkname);

void code_on_check(proc *p, const mbox_item *m) {
  const char *chunk, *name;
  int runs;
  if (m->len < 9) return;   /* a wake-up: the receive it wakes in is the safe point */
  chunk = (const char *)m->data + 9;
  name = chunk + strlen(chunk) + 1;
  runs = code_runs(p, name, (uint32_t)m->ref, chunk);
  if (runs && m->data[8] == CHECK_KILL) proc_set_exit_string(p, "killed", 1);
  answer(p->rt, m, p->pid, runs);
}

void code_on_check_dead(mb_runtime *rt, const mbox_item *m) {
  if (m->len >= 9) answer(rt, m, 0, 0);
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
  const char *name;           /* the module's (switch_module) */
} fetched;

/* Copy m's current version, and record p as its user. 0 if there is none (or no memory). */
static int fetch(proc *p, cmod *m, fetched *f) {
  struct code *c = p->rt->code;
  int found = 0;
  pthread_mutex_lock(&c->lock);
  if (m->cur && (f->bc = malloc(m->cur->len)) != NULL && (f->path = strdup(m->path))) {
    memcpy(f->bc, m->cur->bc, m->cur->len);
    f->len = m->cur->len;
    f->vsn = m->cur->vsn;
    user_add(m->cur, p->pid);
    found = 1;
  } else {
    free(f->bc);
    f->bc = NULL;
  }
  pthread_mutex_unlock(&c->lock);
  return found;
}

/* The code server's module name, if it came from path. NULL if there is none, or if the name
** is taken by a module from another file (*other is set then). */
static cmod *known(struct code *c, const char *name, const char *path, int *other) {
  pthread_mutex_lock(&c->lock);
  cmod *m = find(c, name);
  *other = m && strcmp(m->path, path) != 0;
  pthread_mutex_unlock(&c->lock);
  return *other ? NULL : m;
}

/* Publish the chunk on top of L, from path, as version 1 of name, unless the name is
** known already (two processes required it at once: the first one wins). Returns the
** module if it is now the one from path. */
static cmod *publish_first(proc *p, lua_State *L, const char *name, const char *path) {
  struct code *c = p->rt->code;
  size_t n = strlen(path) + 2;
  char *chunkname = malloc(n);
  cver *v = NULL;
  cmod *m;
  if (chunkname) {
    snprintf(chunkname, n, "@%s", path);
    v = new_version(L, 1, chunkname);
    free(chunkname);
  }
  if (v == NULL) return NULL;
  pthread_mutex_lock(&c->lock);
  if ((m = find(c, name)) == NULL && (m = calloc(1, sizeof *m)) != NULL) {
    if ((m->name = strdup(name)) && (m->path = strdup(path))) {
      m->cur = v;
      m->next = c->mods;
      c->mods = m;
      v = NULL;
    } else {
      free(m->name);
      free(m);
      m = NULL;
    }
  }
  if (m && strcmp(m->path, path) != 0) m = NULL;
  pthread_mutex_unlock(&c->lock);
  cver_free(v);
  return m;
}

static const embed_module *embedded(const char *name) {
  for (size_t i = 0; i < embed_count; i++)
    if (strcmp(embed_modules[i].name, name) == 0) return &embed_modules[i];
  return NULL;
}

/* Where this process's require finds module `name` (argument 1): a file on its own
** package.path, else a module compiled into the binary. Pushes the path (and sets *e for
** an embedded one), or pushes lua's "no file ..." message and returns NULL. */
static const char *find_source(lua_State *L, const char *name, const embed_module **e) {
  lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  lua_getfield(L, -1, LUA_LOADLIBNAME);
  lua_getfield(L, -1, "searchpath");
  lua_pushvalue(L, 1);
  lua_getfield(L, -3, "path");
  lua_call(L, 2, 2);                  /* loaded, package, path-or-nil, message */
  if (lua_isstring(L, -2)) {
    lua_pop(L, 1);
    lua_replace(L, -3);
    lua_pop(L, 1);
    *e = NULL;
    return lua_tostring(L, -1);
  }
  lua_replace(L, -4);
  lua_pop(L, 2);                      /* the message */
  if ((*e = embedded(name)) != NULL) {
    lua_pop(L, 1);
    return lua_pushstring(L, (*e)->chunkname + 1);
  }
  lua_pushfstring(L, "%s\n\tno embedded module '%s'", lua_tostring(L, -1), name);
  lua_remove(L, -2);
  return NULL;
}

/* Compile module name's source from path (or e): pushes the chunk, or raises as lua's
** own searcher does. */
static void compile_source(lua_State *L, const char *name, const char *path,
                           const embed_module *e) {
  int st = e ? luaL_loadbuffer(L, e->src, e->len, e->chunkname) : luaL_loadfilex(L, path, NULL);
  if (st != LUA_OK)
    luaL_error(L, "error loading module '%s' from file '%s':\n\t%s", name, path,
               lua_tostring(L, -1));
}

/*
** package.searchers entry: a Lua module through the code server. The first process to need
** it compiles and publishes it; every process whose require finds the same file loads the
** published bytecode, and so does one whose require finds no file at all (the module stays
** loaded, as in Erlang, even if its file is gone). A process whose package.path leads to
** another file of the same name loads that file itself, as plain require would; the code
** server does not track that one.
*/
static int searcher(lua_State *L) {
  proc *p = proc_of(L);
  struct code *c = p->rt->code;
  const char *name = luaL_checkstring(L, 1);
  const embed_module *e;
  const char *path;
  fetched f = {0};
  int other = 0;
  cmod *m;
  lua_settop(L, 1);
  if ((path = find_source(L, name, &e)) != NULL) {   /* stack: name, path */
    m = known(c, name, path, &other);
  } else {
    pthread_mutex_lock(&c->lock);
    m = find(c, name);
    pthread_mutex_unlock(&c->lock);
    if (m == NULL) return 1;   /* lua's "not found" message */
    lua_pop(L, 1);
    path = lua_pushstring(L, m->path);   /* never changes */
  }
  if (m == NULL && !other) {
    compile_source(L, name, path, e);
    m = publish_first(p, L, name, path);
    if (m) lua_pop(L, 1);
  } else if (m == NULL) {
    compile_source(L, name, path, e);
  }
  if (m) {
    if (!fetch(p, m, &f)) return luaL_error(L, "not enough memory");
    int st = luaL_loadbufferx(L, (const char *)f.bc, f.len, name, "b");
    free(f.bc);
    free(f.path);
    if (st != LUA_OK) return lua_error(L);
    pmod_set(p, m, f.vsn);
  }
  lua_pushvalue(L, 2);
  return 2;   /* the chunk, and the path as its second argument */
}

void code_install_searcher(lua_State *L, int package) {
  lua_getfield(L, package, "searchers");
  lua_pushcfunction(L, searcher);
  lua_rawseti(L, -2, 2);   /* in place of the Lua-file searcher */
  lua_pop(L, 1);
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

/* Does p still run version vsn of module name: it could not switch from it, or one of that
** version's functions (chunk name) is on a stack of its coroutines? One that has not
** reached a safe point since the version was superseded is not running it (unless its
** functions are on a stack): it switches at that safe point. */
static int code_runs(proc *p, const char *name, uint32_t vsn, const char *chunkname) {
  for (size_t i = 0; i < p->nmods; i++) {
    pmod *r = &p->mods[i];
    if (r->stuck && r->vsn == vsn && strcmp(r->m->name, name) == 0) return 1;
  }
  return on_stack(p, chunkname);
}

/* Make the table at `into` hold exactly the fields (and metatable) of the table at `from`;
** a field holding `from` itself holds `into`. */
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
    if (lua_rawequal(L, -1, from)) {   /* M.__index = M */
      lua_pop(L, 1);
      lua_pushvalue(L, into);
    }
    lua_pushvalue(L, -2);
    lua_insert(L, -2);
    lua_rawset(L, into);
  }
  if (!lua_getmetatable(L, from)) lua_pushnil(L);
  lua_setmetatable(L, into);
}

/* The new version's functions were made for its own fresh table: wherever they (or the
** Lua functions they keep as upvalues) hold it as an upvalue, they get the module's table
** instead, so `M.x = v` inside them changes the table everyone else reads. Upvalue cells
** are shared, so one closure's cell rebinds all closures of the chunk. `seen` (a table)
** stops cycles. */
static void rebind(lua_State *L, int f, int fresh, int into, int seen, int depth) {
  if (lua_type(L, f) != LUA_TFUNCTION || lua_iscfunction(L, f) || depth > 100) return;
  luaL_checkstack(L, 4, "module functions nested too deep");
  lua_pushvalue(L, f);
  if (lua_rawget(L, seen) != LUA_TNIL) {
    lua_pop(L, 1);
    return;
  }
  lua_pop(L, 1);
  lua_pushvalue(L, f);
  lua_pushboolean(L, 1);
  lua_rawset(L, seen);
  for (int i = 1; lua_getupvalue(L, f, i) != NULL; i++) {
    if (lua_rawequal(L, -1, fresh)) {
      lua_pushvalue(L, into);
      lua_setupvalue(L, f, i);
    } else {
      rebind(L, lua_gettop(L), fresh, into, seen, depth + 1);
    }
    lua_pop(L, 1);
  }
}

static void rebind_all(lua_State *L, int into, int fresh) {
  int seen;
  lua_createtable(L, 0, 16);
  seen = lua_gettop(L);
  lua_pushnil(L);
  while (lua_next(L, into)) {
    rebind(L, lua_gettop(L), fresh, into, seen, 0);
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
}

/* Protected: run the new chunk (on the stack with the fetched version) and update the
** module. */
static int switch_module(lua_State *L) {
  const fetched *f = lua_touserdata(L, 2);
  const char *name = lua_pushstring(L, f->name);
  lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  int loaded = lua_gettop(L);
  lua_pushvalue(L, 1);
  lua_pushstring(L, name);
  lua_pushstring(L, f->path);
  lua_call(L, 2, 1);
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    lua_pushboolean(L, 1);
  }
  int fresh = lua_gettop(L);
  if (lua_getfield(L, loaded, name) == LUA_TTABLE && lua_istable(L, fresh)) {
    replace_fields(L, lua_gettop(L), fresh);
    rebind_all(L, lua_gettop(L), fresh);
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
  if (!fetch(p, m, &f)) {
    free(old_chunk);
    return;
  }
  lua_pushcfunction(L, switch_module);
  int st = luaL_loadbufferx(L, (const char *)f.bc, f.len, m->name, "b");
  free(f.bc);
  if (st == LUA_OK) {
    f.name = m->name;
    lua_pushlightuserdata(L, &f);
    st = lua_pcall(L, 2, 0, 0);
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
  check kill = {0}, wake = {0};
  if (st == 0 && (users_of(m->old, &doomed, &n) != 0 || users_of(m->cur, &idle, &nidle) != 0 ||
                  (n > 0 && check_about(&kill, m, m->old, CHECK_KILL, 0) != 0)))
    st = MB_ENOMEM;
  if (st == 0) {
    dropped = m->old;
    m->old = m->cur;
    m->cur = v;
    atomic_fetch_add(&rt->code_epoch, 1);
  } else {
    free(doomed);
    free(idle);
    free(kill.data);
    doomed = idle = NULL;
    n = nidle = 0;
  }
  pthread_mutex_unlock(&c->lock);
  check_all(rt, doomed, n, &kill, 0);
  check_all(rt, idle, nidle, &wake, 0);
  cver_free(dropped);
  return st;
}

/* nil and a message, as code.reload fails. */
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

/* code.reload(name) → new version | nil, err. Compiles the file again and runs the chunk
** here first: if either fails, nothing changes. */
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
  if (v == NULL) return fail(L, "%s", mb_strerror(MB_ENOMEM));
  int st = publish(p->rt, name, path, v);
  if (st != 0) {
    cver_free(v);
    return fail(L, "%s", st == MB_EBUSY ? "reloaded by another process meanwhile" : mb_strerror(st));
  }
  lua_pushinteger(L, vsn);
  return 1;
}

/*
** code.purge(name) → true if a process was killed: drops the old version, and the processes
** still running it die ("killed"). code.soft_purge(name) → false, changing nothing, if a
** process still runs the old version; else drops it and → true. Both ask the old version's
** users and wait for their answers (a process that runs a version it has not switched from
** yet does not count); see PURGE below.
**
** purge_start(name, kill) → answer ref, number asked, old version; or nil if there is no
** old version. With kill the old version is dropped at once.
*/
static int l_purge_start(lua_State *L) {
  proc *p = proc_of(L);
  struct code *c = p->rt->code;
  const char *name = lua_tostring(L, 1);
  int kill = lua_toboolean(L, 2), st = 0;
  uint64_t ref = lproc_make_ref(p), *users = NULL;
  size_t n = 0;
  uint32_t vsn = 0;
  cver *dropped = NULL;
  check q = {0};
  pthread_mutex_lock(&c->lock);
  cmod *m = find(c, name);
  if (m && m->old) {
    vsn = m->old->vsn;
    st = users_of(m->old, &users, &n);
    if (st == 0 && n > 0) st = check_about(&q, m, m->old, kill ? CHECK_KILL : CHECK_ASK, ref);
    if (st == 0 && kill) {
      dropped = m->old;
      m->old = NULL;
    }
  }
  pthread_mutex_unlock(&c->lock);
  if (st != 0) {
    free(users);
    free(q.data);
    return luaL_error(L, "not enough memory");
  }
  check_all(p->rt, users, n, &q, p->pid);
  cver_free(dropped);
  if (vsn == 0) return 0;
  lproc_pushterm(L, ref);
  lua_pushinteger(L, (lua_Integer)n);
  lua_pushinteger(L, vsn);
  return 3;
}

/* drop(name, vsn) → true: the old version is dropped if it is still vsn. */
static int l_drop(lua_State *L) {
  struct code *c = proc_of(L)->rt->code;
  const char *name = lua_tostring(L, 1);
  uint32_t vsn = (uint32_t)lua_tointeger(L, 2);
  cver *dropped = NULL;
  pthread_mutex_lock(&c->lock);
  cmod *m = find(c, name);
  if (m && m->old && m->old->vsn == vsn) {
    dropped = m->old;
    m->old = NULL;
  }
  pthread_mutex_unlock(&c->lock);
  cver_free(dropped);
  lua_pushboolean(L, 1);
  return 1;
}

/* purge and soft_purge wait in receive for the answers, so they are Lua functions over the
** two above (their upvalues): a process that cannot answer within 5 s (stuck in a C call)
** counts as running the old version. */
static const char PURGE[] =
  "local start, drop = ...\n"
  "local process = require 'process'\n"
  "local function check(f, name)\n"
  "  if type(name) ~= 'string' then\n"
  "    error(('bad argument #1 to \\'%s\\' (string expected, got %s)'):format(f, type(name)), 3)\n"
  "  end\n"
  "end\n"
  "local function any_runs(ref, n)\n"
  "  local deadline, runs = process.monotonic() + 5000, false\n"
  "  for _ = 1, n do\n"
  "    local m = process.receive({ref, process.ANY}, math.max(0, deadline - process.monotonic()))\n"
  "    if m == nil then return true end\n"
  "    runs = runs or m[2]\n"
  "  end\n"
  "  return runs\n"
  "end\n"
  "local function purge(name)\n"
  "  check('purge', name)\n"
  "  local ref, n = start(name, true)\n"
  "  return ref ~= nil and any_runs(ref, n)\n"
  "end\n"
  "local function soft_purge(name)\n"
  "  check('soft_purge', name)\n"
  "  local ref, n, vsn = start(name, false)\n"
  "  if ref == nil then return true end\n"
  "  if any_runs(ref, n) then return false end\n"
  "  return drop(name, vsn)\n"
  "end\n"
  "return purge, soft_purge\n";

static void open_purge(lua_State *L) {
  if (luaL_loadbuffer(L, PURGE, sizeof PURGE - 1, "=code") != LUA_OK) lua_error(L);
  lua_pushcfunction(L, l_purge_start);
  lua_pushcfunction(L, l_drop);
  lua_call(L, 2, 2);
  lua_setfield(L, -3, "soft_purge");
  lua_setfield(L, -2, "purge");
}

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
  int in_old = 0;
  luaL_argexpected(L, term_ispid(pid), 1, "pid");
  const char *name = luaL_checkstring(L, 2);
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

/* code.switching(on) → whether it was on. Off, receive and sleep are no safe points for this
** process (behaviours turn it off around callbacks, so a callback never switches midway);
** code.switch() still switches. */
static int l_switching(lua_State *L) {
  proc *p = proc_of(L);
  luaL_checktype(L, 1, LUA_TBOOLEAN);
  lua_pushboolean(L, !p->code_hold);
  p->code_hold = !lua_toboolean(L, 1);
  return 1;
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
    {"loaded", l_loaded}, {"which", l_which}, {"check_process_code", l_check_process_code},
    {"epoch", l_epoch}, {"users", l_users}, {"switch", l_switch}, {"switching", l_switching},
    {"available", l_available}, {NULL, NULL}};
  luaL_newlib(L, fns);
  open_purge(L);
  return 1;
}
