/* msg.c — copies Lua values between processes through flat blobs (format in msg.h). */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lua.h>
#include <lauxlib.h>

#include "mbconf.h"
#include "moonbeam.h"
#include "bytecode.h"
#include "lnet.h"
#include "msg.h"
#include "pid.h"

/* Scratch grown past this many bytes is released when an encoder is reset. */
#define KEEP_BYTES ((size_t)1 << 20)

/* Characters msg_format writes before it cuts the output with "...". */
#define FMT_LIMIT 4000

/* {==================================================================
** Growable buffers
** =================================================================== */

void msg_buf_init(msg_buf *b) {
  b->p = NULL;
  b->len = b->cap = 0;
}

void msg_buf_free(msg_buf *b) {
  free(b->p);
  msg_buf_init(b);
}

int msg_buf_reserve(msg_buf *b, size_t extra) {
  size_t need, cap;
  unsigned char *p;
  if (extra <= b->cap - b->len) return 0;
  if (extra > SIZE_MAX - b->len) return MB_ENOMEM;
  need = b->len + extra;
  cap = b->cap ? b->cap : 64;
  while (cap < need) cap = cap > SIZE_MAX / 2 ? need : cap * 2;
  p = realloc(b->p, cap);
  if (!p) return MB_ENOMEM;
  b->p = p;
  b->cap = cap;
  return 0;
}

int msg_buf_add(msg_buf *b, const void *p, size_t n) {
  int rc = msg_buf_reserve(b, n);
  if (rc) return rc;
  if (n) memcpy(b->p + b->len, p, n);
  b->len += n;
  return 0;
}

static int buf_byte(msg_buf *b, unsigned c) {
  unsigned char x = (unsigned char)c;
  return msg_buf_add(b, &x, 1);
}

static int buf_str(msg_buf *b, const char *s) {
  return msg_buf_add(b, s, strlen(s));
}

/*
** printf into a buffer; formats twice when the text does not fit the small stack buffer
** (only error paths produce long texts).
*/
static int buf_printf(msg_buf *b, const char *fmt, ...) {
  char small[128];
  va_list ap;
  int n;
  va_start(ap, fmt);
  n = vsnprintf(small, sizeof small, fmt, ap);
  va_end(ap);
  if (n < 0) return MB_EINVAL;
  if ((size_t)n < sizeof small) return msg_buf_add(b, small, (size_t)n);
  if (msg_buf_reserve(b, (size_t)n + 1)) return MB_ENOMEM;
  va_start(ap, fmt);
  vsnprintf((char *)b->p + b->len, (size_t)n + 1, fmt, ap);
  va_end(ap);
  b->len += (size_t)n;
  return 0;
}

/* Escapes for names in error paths (named == 0: \ddd only) and for msg_format (\n, \t, \r). */
static int escape(msg_buf *b, const char *s, size_t len, int named) {
  size_t i;
  int rc = 0;
  for (i = 0; i < len && !rc; i++) {
    unsigned char c = (unsigned char)s[i];
    if (named && (c == '\n' || c == '\t' || c == '\r'))
      rc = buf_str(b, c == '\n' ? "\\n" : c == '\t' ? "\\t" : "\\r");
    else if (c == '"' || c == '\\')
      rc = buf_byte(b, '\\') || buf_byte(b, c) ? MB_ENOMEM : 0;
    else if (c < 0x20 || c == 0x7f)
      rc = buf_printf(b, "\\%03u", (unsigned)c);
    else
      rc = buf_byte(b, c);
  }
  return rc;
}

/* A key that can be written as .name: an ASCII identifier that is not a reserved word. */
static int is_ident(const char *s, size_t len) {
  static const char *const reserved[] = {
    "and", "break", "do", "else", "elseif", "end", "false", "for", "function", "goto", "if",
    "in", "local", "nil", "not", "or", "repeat", "return", "then", "true", "until", "while"
  };
  size_t i;
  if (len == 0 || (s[0] >= '0' && s[0] <= '9')) return 0;
  for (i = 0; i < len; i++) {
    char c = s[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
          c == '_'))
      return 0;
  }
  for (i = 0; i < sizeof reserved / sizeof reserved[0]; i++)
    if (strlen(reserved[i]) == len && memcmp(reserved[i], s, len) == 0) return 0;
  return 1;
}

/* }================================================================== */

/* {==================================================================
** Builder: primitive writers shared by msgb_* and the encoder
** =================================================================== */

static int put_varint(msg_buf *b, uint64_t v) {
  unsigned char tmp[10];
  size_t n = 0;
  do {
    tmp[n] = (unsigned char)(v & 0x7f);
    v >>= 7;
    if (v) tmp[n] |= 0x80;
    n++;
  } while (v);
  return msg_buf_add(b, tmp, n);
}

static int put_le(msg_buf *b, uint64_t v, int nbytes) {
  unsigned char tmp[8];
  int i;
  for (i = 0; i < nbytes; i++) tmp[i] = (unsigned char)(v >> (8 * i));
  return msg_buf_add(b, tmp, (size_t)nbytes);
}

/* A length-prefixed byte string (no tag). */
static int put_lstr(msg_buf *b, const void *s, size_t len) {
  int rc = put_varint(b, len);
  return rc ? rc : msg_buf_add(b, s, len);
}

int msgb_count(msg_buf *b, unsigned n) { return put_varint(b, (uint64_t)n << 1); }
int msgb_nil(msg_buf *b) { return buf_byte(b, MSG_NIL); }
int msgb_bool(msg_buf *b, int v) { return buf_byte(b, v ? MSG_TRUE : MSG_FALSE); }

int msgb_int(msg_buf *b, int64_t v) {
  uint64_t z = ((uint64_t)v << 1) ^ (v < 0 ? UINT64_MAX : 0);
  int rc = buf_byte(b, MSG_INT);
  return rc ? rc : put_varint(b, z);
}

int msgb_float(msg_buf *b, double v) {
  uint64_t u;
  int rc = buf_byte(b, MSG_FLOAT);
  memcpy(&u, &v, sizeof u);
  return rc ? rc : put_le(b, u, 8);
}

int msgb_str(msg_buf *b, const char *s, size_t len) {
  int rc = buf_byte(b, MSG_STR);
  return rc ? rc : put_lstr(b, s, len);
}

int msgb_term(msg_buf *b, uint64_t v) {
  int rc = buf_byte(b, MSG_TERM);
  return rc ? rc : put_le(b, v, 8);
}

int msgb_table(msg_buf *b, uint32_t narr, uint32_t nhash) {
  int rc = buf_byte(b, MSG_TABLE);
  if (!rc) rc = put_le(b, narr, 4);
  return rc ? rc : put_le(b, nhash, 4);
}

int msgb_socket(msg_buf *b, uint64_t id) {
  int rc = buf_byte(b, MSG_SOCKET);
  return rc ? rc : put_le(b, id, 8);
}

int msgb_embed(msg_buf *b, const unsigned char *blob, size_t len) {
  int rc = buf_byte(b, MSG_EMBED);
  return rc ? rc : put_lstr(b, blob, len);
}

/* }================================================================== */

/* {==================================================================
** Reader: bounds-checked reads shared by the decoder and the printer
** =================================================================== */

typedef struct rd {
  const unsigned char *p, *end;
} rd;

static void rd_init(rd *r, const unsigned char *p, size_t len) {
  r->p = p;
  r->end = p ? p + len : p;
}

static size_t rd_left(const rd *r) { return (size_t)(r->end - r->p); }

static int rd_byte(rd *r, unsigned *v) {
  if (r->p == r->end) return MB_EBADMSG;
  *v = *r->p++;
  return 0;
}

/* LEB128; non-minimal encodings are accepted, values past 64 bits are not. */
static int rd_varint(rd *r, uint64_t *v) {
  uint64_t x = 0;
  unsigned shift = 0, c;
  do {
    if (r->p == r->end || shift > 63) return MB_EBADMSG;
    c = *r->p++;
    if (shift == 63 && (c & 0xfe)) return MB_EBADMSG;
    x |= (uint64_t)(c & 0x7f) << shift;
    shift += 7;
  } while (c & 0x80);
  *v = x;
  return 0;
}

static int rd_le(rd *r, int nbytes, uint64_t *v) {
  int i;
  if (rd_left(r) < (size_t)nbytes) return MB_EBADMSG;
  for (*v = 0, i = 0; i < nbytes; i++) *v |= (uint64_t)r->p[i] << (8 * i);
  r->p += nbytes;
  return 0;
}

/* varint(len) bytes: points *s into the blob. */
static int rd_bytes(rd *r, const unsigned char **s, size_t *len) {
  uint64_t n;
  if (rd_varint(r, &n) || n > rd_left(r)) return MB_EBADMSG;
  *s = r->p;
  *len = (size_t)n;
  r->p += n;
  return 0;
}

static int64_t unzigzag(uint64_t z) {
  uint64_t u = (z >> 1) ^ (0 - (z & 1));
  int64_t i;
  memcpy(&i, &u, sizeof i);
  return i;
}

/* }================================================================== */

/* {==================================================================
** Pointer maps: open addressing; bumping the generation empties them in O(1)
** =================================================================== */

typedef struct slot {
  const void *key;
  uint64_t val;
  uint32_t gen, aux;
} slot;

typedef struct pmap {
  slot *s;
  size_t cap, count;
  uint32_t gen;
} pmap;

static size_t pmap_hash(const void *k, size_t cap) {
  uint64_t h = (uint64_t)(uintptr_t)k * 0x9E3779B97F4A7C15ull;
  return (size_t)(h ^ (h >> 32)) & (cap - 1);
}

/* The slot holding k, or the free slot where k would go. The map is never more than half full. */
static slot *pmap_find(pmap *m, const void *k) {
  size_t i = pmap_hash(k, m->cap);
  while (m->s[i].gen == m->gen && m->s[i].key != k) i = (i + 1) & (m->cap - 1);
  return &m->s[i];
}

static int pmap_get(pmap *m, const void *k, uint64_t *val, uint32_t *aux) {
  slot *s;
  if (m->cap == 0) return 0;
  s = pmap_find(m, k);
  if (s->gen != m->gen) return 0;
  if (val) *val = s->val;
  if (aux) *aux = s->aux;
  return 1;
}

static int pmap_grow(pmap *m) {
  pmap n;
  size_t i;
  n.cap = m->cap ? m->cap * 2 : 64;
  n.count = m->count;
  n.gen = 1;
  n.s = calloc(n.cap, sizeof *n.s);
  if (!n.s) return MB_ENOMEM;
  for (i = 0; i < m->cap; i++) {
    if (m->s[i].gen != m->gen) continue;
    slot *d = pmap_find(&n, m->s[i].key);
    *d = m->s[i];
    d->gen = 1;
  }
  free(m->s);
  *m = n;
  return 0;
}

static int pmap_put(pmap *m, const void *k, uint64_t val, uint32_t aux) {
  slot *s;
  if ((m->count + 1) * 2 > m->cap && pmap_grow(m)) return MB_ENOMEM;
  s = pmap_find(m, k);
  if (s->gen != m->gen) m->count++;
  s->key = k;
  s->val = val;
  s->aux = aux;
  s->gen = m->gen;
  return 0;
}

static void pmap_clear(pmap *m) {
  m->count = 0;
  if (m->cap * sizeof *m->s > KEEP_BYTES) {
    free(m->s);
    m->s = NULL;
    m->cap = 0;
    m->gen = 1;
  } else if (++m->gen == 0) {
    if (m->cap) memset(m->s, 0, m->cap * sizeof *m->s);
    m->gen = 1;
  }
}

/* }================================================================== */

/* {==================================================================
** Encoder
** =================================================================== */

enum { STEP_INDEX, STEP_KEY, STEP_UPVAL };

/* One step of the path to the value being encoded; formatted only when a value is refused. */
typedef struct step {
  int kind;
  int idx;           /* STEP_KEY: stack index of the key (alive while the step is) */
  lua_Integer i;     /* STEP_INDEX */
  const char *name;  /* STEP_UPVAL: owned by the function's prototype */
} step;

struct msg_enc {
  msg_buf buf;   /* the blob */
  msg_buf code;  /* one function's bytecode, copied into buf before its upvalues */
  msg_buf err;   /* the refusal message */
  pmap seen;     /* lua_topointer -> object id */
  pmap upvals;   /* lua_upvalueid -> (function id, upvalue index) */
  uint64_t nobj;
  int refs;      /* an OBJREF or upvalue join was written: the count's flag bit */
  int cache;     /* msg_enc_cache_code */
  int loaded;    /* stack index of package.loaded, 0 if there is none */
  int k;         /* k of "<root> #k"; 0 when a single value is encoded */
  const char *root;
  int npath;
  /* A container at level l <= MB_MSG_MAXDEPTH holds step l, so steps never exceed the max. */
  step path[MB_MSG_MAXDEPTH + 1];
};

static int enc_value(lua_State *L, msg_enc *e, int idx, int depth, int is_key);

msg_enc *msg_enc_new(void) {
  msg_enc *e = calloc(1, sizeof *e);
  if (!e) return NULL;
  e->seen.gen = e->upvals.gen = 1;
  return e;
}

void msg_enc_free(msg_enc *e) {
  if (!e) return;
  msg_buf_free(&e->buf);
  msg_buf_free(&e->code);
  msg_buf_free(&e->err);
  free(e->seen.s);
  free(e->upvals.s);
  free(e);
}

static void scratch_reset(msg_buf *b) {
  if (b->cap > KEEP_BYTES) msg_buf_free(b);
  b->len = 0;
}

/*
** Everything a call needs is reset here rather than cleaned up on exit, so a Lua error
** that longjmps out of a previous call costs nothing and leaks nothing.
*/
static void enc_reset(msg_enc *e, const char *root) {
  scratch_reset(&e->buf);
  scratch_reset(&e->code);
  scratch_reset(&e->err);
  pmap_clear(&e->seen);
  pmap_clear(&e->upvals);
  e->nobj = 0;
  e->refs = 0;
  e->npath = 0;
  e->k = 0;
  e->root = root ? root : "msg";
}

static step *path_push(msg_enc *e, int kind) {
  step *s = &e->path[e->npath++];
  s->kind = kind;
  return s;
}

static const char *term_word(uint64_t v) {
  if (!term_is(v)) return "light userdata";
  return term_ispid(v) ? "pid" : term_isref(v) ? "ref" : "term";
}

static int strkey_write(lua_State *L, msg_buf *b, int k) {
  size_t len;
  const char *s = lua_tolstring(L, k, &len);
  if (is_ident(s, len)) return buf_byte(b, '.') || msg_buf_add(b, s, len) ? MB_ENOMEM : 0;
  if (buf_str(b, "[\"") || escape(b, s, len, 0)) return MB_ENOMEM;
  return buf_str(b, "\"]");
}

/* A key step; never converts a number key in place (that would confuse lua_next). */
static int key_write(lua_State *L, msg_buf *b, int k) {
  switch (lua_type(L, k)) {
    case LUA_TSTRING:
      return strkey_write(L, b, k);
    case LUA_TNUMBER:
      if (lua_isinteger(L, k)) return buf_printf(b, "[%lld]", (long long)lua_tointeger(L, k));
      return buf_printf(b, "[%.14g]", (double)lua_tonumber(L, k));
    case LUA_TBOOLEAN:
      return buf_str(b, lua_toboolean(L, k) ? "[true]" : "[false]");
    case LUA_TLIGHTUSERDATA:
      return buf_printf(b, "[<%s>]", term_word((uint64_t)(uintptr_t)lua_touserdata(L, k)));
    default:
      return buf_printf(b, "[<%s>]", luaL_typename(L, k));
  }
}

static int step_write(lua_State *L, msg_buf *b, const step *s) {
  switch (s->kind) {
    case STEP_INDEX: return buf_printf(b, "[%lld]", (long long)s->i);
    case STEP_UPVAL: return buf_printf(b, "<upvalue %s>", s->name);
    default: return key_write(L, b, s->idx);
  }
}

static int path_write(lua_State *L, msg_enc *e, int nsteps) {
  int i, rc;
  rc = e->k ? buf_printf(&e->err, "%s #%d", e->root, e->k) : buf_str(&e->err, e->root);
  for (i = 0; i < nsteps && !rc; i++) rc = step_write(L, &e->err, &e->path[i]);
  return rc;
}

/*
** Builds "<path>: <kind> cannot be sent" while the keys it names are still on the stack.
** A refused key is named by its kind in place of the last step.
*/
static int refuse(lua_State *L, msg_enc *e, const char *kind, int is_key) {
  e->err.len = 0;
  if (path_write(L, e, e->npath - (is_key ? 1 : 0))) return MB_ENOMEM;
  if (is_key && buf_printf(&e->err, "[<%s>]", kind)) return MB_ENOMEM;
  if (buf_printf(&e->err, ": %s%s cannot be sent", kind, is_key ? " key" : "")) return MB_ENOMEM;
  return MB_EUNCOPYABLE;
}

static int refuse_deep(lua_State *L, msg_enc *e, const char *what) {
  e->err.len = 0;
  if (path_write(L, e, e->npath)) return MB_ENOMEM;
  if (buf_printf(&e->err, ": %s nested deeper than %d levels cannot be sent", what,
                 MB_MSG_MAXDEPTH))
    return MB_ENOMEM;
  return MB_EUNCOPYABLE;
}

/* Writes an OBJREF and returns 1 if the object is already in this blob. */
static int seen_ref(msg_enc *e, const void *p, int *rc) {
  uint64_t id;
  if (!pmap_get(&e->seen, p, &id, NULL)) return 0;
  e->refs = 1;
  *rc = buf_byte(&e->buf, MSG_OBJREF);
  if (!*rc) *rc = put_varint(&e->buf, id);
  return 1;
}

static int new_object(msg_enc *e, const void *p, uint64_t *id) {
  if (id) *id = e->nobj;
  return pmap_put(&e->seen, p, e->nobj++, 0);
}

static int is_G(const char *s, size_t len) { return len == 2 && s[0] == '_' && s[1] == 'G'; }

/*
** The name under which package.loaded holds the value at idx. "_G" is taken only when no
** other name fits. The name stays alive as a key of package.loaded.
*/
static int module_name(lua_State *L, msg_enc *e, int idx, const char **name, size_t *len) {
  int found = 0;
  lua_pushnil(L);
  while (lua_next(L, e->loaded)) {
    if (lua_type(L, -2) == LUA_TSTRING && lua_rawequal(L, -1, idx)) {
      *name = lua_tolstring(L, -2, len);
      found = 1;
      if (!is_G(*name, *len)) {
        lua_pop(L, 2);
        return 1;
      }
    }
    lua_pop(L, 1);
  }
  return found;
}

/* A string key of the table on top whose value is raw-equal to the value at f. */
static int field_of(lua_State *L, int f, const char **field, size_t *flen) {
  lua_pushnil(L);
  while (lua_next(L, -2)) {
    if (lua_type(L, -2) == LUA_TSTRING && lua_rawequal(L, -1, f)) {
      *field = lua_tolstring(L, -2, flen);
      lua_pop(L, 2);
      return 1;
    }
    lua_pop(L, 1);
  }
  return 0;
}

/*
** Finds a C function as package.loaded[mod][field], one level deep, preferring any module
** over "_G" (so string.format is string/format while print is _G/print).
*/
static int cfunc_name(lua_State *L, msg_enc *e, int f, const char **mod, size_t *mlen,
                      const char **field, size_t *flen) {
  int found = 0;
  lua_pushnil(L);
  while (lua_next(L, e->loaded)) {
    if (lua_type(L, -2) == LUA_TSTRING && lua_istable(L, -1) && field_of(L, f, field, flen)) {
      *mod = lua_tolstring(L, -2, mlen);
      found = 1;
      if (!is_G(*mod, *mlen)) {
        lua_pop(L, 2);
        return 1;
      }
    }
    lua_pop(L, 1);
  }
  return found;
}

static int enc_cfunc(lua_State *L, msg_enc *e, int idx, int is_key) {
  const char *mod, *field;
  size_t mlen, flen;
  int rc;
  luaL_checkstack(L, 6, "message too complex");
  if (!e->loaded || !cfunc_name(L, e, idx, &mod, &mlen, &field, &flen))
    return refuse(L, e, "C function", is_key);
  rc = buf_byte(&e->buf, MSG_CFUNC);
  if (!rc) rc = put_lstr(&e->buf, mod, mlen);
  return rc ? rc : put_lstr(&e->buf, field, flen);
}

static int enc_module(msg_enc *e, const void *p, const char *name, size_t len) {
  int rc = buf_byte(&e->buf, MSG_MODULE);
  if (!rc) rc = put_lstr(&e->buf, name, len);
  return rc ? rc : new_object(e, p, NULL);
}

static int dump_writer(lua_State *L, const void *p, size_t n, void *ud) {
  (void)L;
  return msg_buf_add(ud, p, n) != 0;
}

void msg_enc_cache_code(msg_enc *e, int on) { e->cache = on; }

static const char CODE_CACHE = 'c';   /* registry[&CODE_CACHE]: function -> its dump */

/* Pushes the table of dumps (weak keys), made on first use. */
static void push_code_cache(lua_State *L) {
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &CODE_CACHE) == LUA_TTABLE) return;
  lua_pop(L, 1);
  lua_createtable(L, 0, 4);
  lua_createtable(L, 0, 1);
  lua_pushliteral(L, "k");
  lua_setfield(L, -2, "__mode");
  lua_setmetatable(L, -2);
  lua_pushvalue(L, -1);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &CODE_CACHE);
}

/* The function at f dumped into e->code; 0 or MB_ENOMEM. */
static int dump(lua_State *L, msg_enc *e, int f) {
  int rc;
  e->code.len = 0;
  lua_pushvalue(L, f);
  rc = lua_dump(L, dump_writer, &e->code, 0);
  lua_pop(L, 1);
  return rc ? MB_ENOMEM : 0;
}

static int enc_bytecode(lua_State *L, msg_enc *e, int f) {
  const char *code;
  size_t len;
  int rc, cached = 0;
  if (e->cache) {
    push_code_cache(L);
    lua_pushvalue(L, f);
    cached = lua_rawget(L, -2) == LUA_TSTRING;   /* cache, dump-or-nil */
    if (!cached) lua_pop(L, 2);
  }
  if (cached) {
    code = lua_tolstring(L, -1, &len);
  } else {
    if (dump(L, e, f)) return MB_ENOMEM;
    code = (const char *)e->code.p;
    len = e->code.len;
    if (e->cache) {
      push_code_cache(L);
      lua_pushvalue(L, f);
      lua_pushlstring(L, code, len);
      lua_rawset(L, -3);
      lua_pop(L, 1);
    }
  }
  rc = buf_byte(&e->buf, MSG_FUNC);
  if (!rc) rc = put_lstr(&e->buf, code, len);
  if (cached) lua_pop(L, 2);
  return rc;
}

static int upvalue_count(lua_State *L, int f) {
  lua_Debug ar;
  lua_pushvalue(L, f);
  lua_getinfo(L, ">u", &ar);
  return ar.nups;
}

/*
** A plain upvalue value. A table that package.loaded knows travels by name, so the receiver
** binds its own copy of the module; elsewhere (not a direct upvalue) tables are copied.
*/
static int enc_upvalue_value(lua_State *L, msg_enc *e, const char *name, int depth) {
  int v = lua_gettop(L), rc = buf_byte(&e->buf, MSG_UV_VALUE);
  const void *p = lua_topointer(L, v);
  const char *mod;
  size_t len;
  if (rc) return rc;
  path_push(e, STEP_UPVAL)->name = name;
  if (lua_istable(L, v) && e->loaded && !pmap_get(&e->seen, p, NULL, NULL) &&
      module_name(L, e, v, &mod, &len))
    rc = enc_module(e, p, mod, len);
  else
    rc = enc_value(L, e, v, depth, 0);
  e->npath--;
  return rc;
}

/*
** Upvalue i of function f (object fid). Its cell is recorded before its value is encoded,
** so a function met inside that value joins the cell instead of copying it again.
*/
static int enc_upvalue(lua_State *L, msg_enc *e, int f, uint64_t fid, int i, int depth) {
  const char *name = lua_getupvalue(L, f, i);
  void *cell;
  uint64_t jfid;
  uint32_t jn;
  int rc;
  if (!name) return luaL_error(L, "function has an invalid upvalue");
  cell = lua_upvalueid(L, f, i);
  if (pmap_get(&e->upvals, cell, &jfid, &jn)) {
    e->refs = 1;
    rc = buf_byte(&e->buf, MSG_UV_JOIN);
    if (!rc) rc = put_varint(&e->buf, jfid);
    if (!rc) rc = buf_byte(&e->buf, jn);
  } else if ((rc = pmap_put(&e->upvals, cell, fid, (uint32_t)i)) != 0) {
    return rc;
  } else if (strcmp(name, "_ENV") == 0) {
    rc = buf_byte(&e->buf, MSG_UV_GLOBALS);
  } else {
    rc = enc_upvalue_value(L, e, name, depth);
  }
  lua_pop(L, 1);
  return rc;
}

static int enc_function(lua_State *L, msg_enc *e, int f, int depth, int is_key) {
  const void *p = lua_topointer(L, f);
  uint64_t id;
  int rc, i, nups;
  if (lua_iscfunction(L, f)) return enc_cfunc(L, e, f, is_key);
  if (seen_ref(e, p, &rc)) return rc;
  if (depth >= MB_MSG_MAXDEPTH) return refuse_deep(L, e, "function");
  luaL_checkstack(L, 8, "message nested too deeply");
  if ((rc = new_object(e, p, &id)) != 0 || (rc = enc_bytecode(L, e, f)) != 0) return rc;
  nups = upvalue_count(L, f);
  if ((rc = buf_byte(&e->buf, (unsigned)nups)) != 0) return rc;
  for (i = 1; i <= nups && !rc; i++) rc = enc_upvalue(L, e, f, id, i, depth + 1);
  return rc;
}

static int enc_array(lua_State *L, msg_enc *e, int t, size_t narr, int depth) {
  size_t i;
  int rc;
  for (i = 1; i <= narr; i++) {
    lua_rawgeti(L, t, (lua_Integer)i);
    path_push(e, STEP_INDEX)->i = (lua_Integer)i;
    rc = enc_value(L, e, lua_gettop(L), depth, 0);
    e->npath--;
    if (rc) return rc;
    lua_pop(L, 1);
  }
  return 0;
}

static void patch_u32(msg_buf *b, size_t at, uint32_t v) {
  int i;
  for (i = 0; i < 4; i++) b->p[at + (size_t)i] = (unsigned char)(v >> (8 * i));
}

/* The keys lua_next gives beyond 1..narr, counted into the placeholder at `at`. */
static int enc_hash(lua_State *L, msg_enc *e, int t, size_t narr, size_t at, int depth) {
  uint32_t nhash = 0;
  int rc;
  lua_pushnil(L);
  while (lua_next(L, t)) {
    int k = lua_gettop(L) - 1;
    if (!lua_isinteger(L, k) || lua_tointeger(L, k) < 1 ||
        (lua_Unsigned)lua_tointeger(L, k) > narr) {
      path_push(e, STEP_KEY)->idx = k;
      rc = enc_value(L, e, k, depth, 1);
      if (!rc) rc = enc_value(L, e, k + 1, depth, 0);
      e->npath--;
      if (rc) return rc;
      nhash++;
    }
    lua_pop(L, 1);
  }
  patch_u32(&e->buf, at, nhash);
  return 0;
}

static int enc_table(lua_State *L, msg_enc *e, int t, int depth) {
  const void *p = lua_topointer(L, t);
  lua_Unsigned len;
  size_t narr, at;
  int rc;
  if (seen_ref(e, p, &rc)) return rc;
  if (depth >= MB_MSG_MAXDEPTH) return refuse_deep(L, e, "table");
  luaL_checkstack(L, 8, "message nested too deeply");
  if ((rc = new_object(e, p, NULL)) != 0) return rc;
  len = lua_rawlen(L, t);
  narr = len > UINT32_MAX ? UINT32_MAX : (size_t)len;
  if ((rc = msgb_table(&e->buf, (uint32_t)narr, 0)) != 0) return rc;
  at = e->buf.len - 4;
  if ((rc = enc_array(L, e, t, narr, depth + 1)) != 0) return rc;
  return enc_hash(L, e, t, narr, at, depth + 1);
}

static int enc_light(lua_State *L, msg_enc *e, int idx, int is_key) {
  uint64_t v = (uint64_t)(uintptr_t)lua_touserdata(L, idx);
  if (!term_is(v)) return refuse(L, e, "light userdata", is_key);
  return msgb_term(&e->buf, v);
}

/* Of full userdata only the net module's sockets travel (as their id). */
static int enc_userdata(lua_State *L, msg_enc *e, int idx, int is_key) {
  uint64_t id;
  if (!lnet_socket_id(L, idx, &id)) return refuse(L, e, "userdata", is_key);
  return msgb_socket(&e->buf, id);
}

static int enc_value(lua_State *L, msg_enc *e, int idx, int depth, int is_key) {
  size_t len;
  const char *s;
  switch (lua_type(L, idx)) {
    case LUA_TNIL: return msgb_nil(&e->buf);
    case LUA_TBOOLEAN: return msgb_bool(&e->buf, lua_toboolean(L, idx));
    case LUA_TNUMBER:
      if (lua_isinteger(L, idx)) return msgb_int(&e->buf, (int64_t)lua_tointeger(L, idx));
      return msgb_float(&e->buf, (double)lua_tonumber(L, idx));
    case LUA_TSTRING:
      s = lua_tolstring(L, idx, &len);
      return msgb_str(&e->buf, s, len);
    case LUA_TTABLE: return enc_table(L, e, idx, depth);
    case LUA_TFUNCTION: return enc_function(L, e, idx, depth, is_key);
    case LUA_TLIGHTUSERDATA: return enc_light(L, e, idx, is_key);
    case LUA_TUSERDATA: return enc_userdata(L, e, idx, is_key);
    default: return refuse(L, e, "thread", is_key);
  }
}

static const char LOADED_KEY = 'l';   /* registry[&LOADED_KEY]: package.loaded, kept */

/* Pushes package.loaded, found by a light-userdata key after the first time (a string key
** would go through the string cache on every message). */
static void push_loaded(lua_State *L) {
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &LOADED_KEY) == LUA_TTABLE) return;
  lua_pop(L, 1);
  lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  if (!lua_istable(L, -1)) return;
  lua_pushvalue(L, -1);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &LOADED_KEY);
}

int msg_encode(lua_State *L, int idx, int n, msg_enc *e, const char *root,
               const unsigned char **out, size_t *outlen) {
  int top = lua_gettop(L), k, rc, composite = 0;
  if (n < 0) return MB_EINVAL;
  idx = lua_absindex(L, idx);
  enc_reset(e, root);
  luaL_checkstack(L, 8, "message too complex");
  for (k = 0; k < n; k++) {   /* only tables and functions can name modules */
    int t = lua_type(L, idx + k);
    composite |= t == LUA_TTABLE || t == LUA_TFUNCTION;
  }
  e->loaded = 0;
  if (composite) {
    push_loaded(L);
    e->loaded = lua_istable(L, -1) ? lua_gettop(L) : 0;
  }
  rc = msgb_count(&e->buf, (unsigned)n);
  for (k = 0; k < n && !rc; k++) {
    e->k = n == 1 ? 0 : k + 1;
    rc = enc_value(L, e, idx + k, 0, 0);
  }
  lua_settop(L, top);
  if (rc == MB_EUNCOPYABLE) lua_pushlstring(L, (const char *)e->err.p, e->err.len);
  if (rc) return rc;
  if (e->refs) e->buf.p[0] |= 1;   /* the count's low bit: its first byte's */
  *out = e->buf.p;
  *outlen = e->buf.len;
  return 0;
}

/* }================================================================== */

/* {==================================================================
** Decoder
** =================================================================== */

/*
** Decoding state for one blob (an embedded blob gets its own). When the blob refers back to
** its objects, they go into a Lua table at stack slot objs, created at the first object:
** objs[id + 1] is the object and objs[-(id + 1)] is true when it is a function decoded here
** (a valid upvalue-join target). Otherwise (most messages) objs is 0 and nothing is kept.
*/
typedef struct dec {
  rd r;
  int objs;
  lua_Integer nobj;
} dec;

static int dec_value(lua_State *L, dec *d, int depth);

static void dec_init(dec *d, const unsigned char *p, size_t len) {
  rd_init(&d->r, p, len);
  d->objs = 0;
  d->nobj = 0;
}

static void add_object(lua_State *L, dec *d, int v, int isfunc) {
  if (d->objs == 0) return;
  if (lua_isnil(L, d->objs)) {
    lua_newtable(L);
    lua_replace(L, d->objs);
  }
  lua_pushvalue(L, v);
  lua_rawseti(L, d->objs, ++d->nobj);
  if (isfunc) {
    lua_pushboolean(L, 1);
    lua_rawseti(L, d->objs, -d->nobj);
  }
}

/* Reads the count and the values; `one` demands a count of 1 (embedded blobs). Pushes the
** slot of the object table first when the blob refers back to objects (see dec). */
static int dec_blob(lua_State *L, dec *d, int depth, int one, uint64_t *count) {
  uint64_t n, i;
  if (rd_varint(&d->r, &n)) return MB_EBADMSG;
  if (n & 1) {
    lua_pushnil(L);
    d->objs = lua_gettop(L);
  }
  n >>= 1;
  if (n > rd_left(&d->r) || (one && n != 1)) return MB_EBADMSG;
  for (i = 0; i < n; i++) {
    luaL_checkstack(L, 4, "message has too many values");
    if (dec_value(L, d, depth)) return MB_EBADMSG;
  }
  if (d->r.p != d->r.end) return MB_EBADMSG;
  *count = n;
  return 0;
}

static int table_hint(uint64_t n) { return n > INT32_MAX ? INT32_MAX : (int)n; }

static int bad_key(lua_State *L, int k) {
  if (lua_isnil(L, k)) return 1;
  if (lua_type(L, k) != LUA_TNUMBER || lua_isinteger(L, k)) return 0;
  return isnan((double)lua_tonumber(L, k));
}

static int dec_table(lua_State *L, dec *d, int depth) {
  uint64_t narr, nhash, i;
  int t;
  if (depth >= MB_MSG_MAXDEPTH || rd_le(&d->r, 4, &narr) || rd_le(&d->r, 4, &nhash) ||
      narr + 2 * nhash > rd_left(&d->r))
    return MB_EBADMSG;
  luaL_checkstack(L, 6, "message nested too deeply");
  lua_createtable(L, table_hint(narr), table_hint(nhash));
  t = lua_gettop(L);
  add_object(L, d, t, 0);
  for (i = 1; i <= narr; i++) {
    if (dec_value(L, d, depth + 1)) return MB_EBADMSG;
    lua_rawseti(L, t, (lua_Integer)i);
  }
  for (i = 0; i < nhash; i++) {
    if (dec_value(L, d, depth + 1) || bad_key(L, -1) || dec_value(L, d, depth + 1))
      return MB_EBADMSG;
    lua_rawset(L, t);
  }
  return 0;
}

static int dec_objref(lua_State *L, dec *d) {
  uint64_t id;
  if (rd_varint(&d->r, &id) || id >= (uint64_t)d->nobj) return MB_EBADMSG;
  lua_rawgeti(L, d->objs, (lua_Integer)id + 1);
  return 0;
}

typedef struct chunk {
  const unsigned char *p;
  size_t len;
} chunk;

static const char *chunk_reader(lua_State *L, void *ud, size_t *size) {
  chunk *c = ud;
  (void)L;
  *size = c->len;
  c->len = 0;
  return (const char *)c->p;
}

/* Pushes the loaded function, or returns MB_EBADMSG with nothing pushed. */
static int load_code(lua_State *L, const unsigned char *code, size_t len) {
  chunk c;
  if (bytecode_check(code, len)) return MB_EBADMSG;
  c.p = code;
  c.len = len;
  if (lua_load(L, chunk_reader, &c, "=message", "b") == LUA_OK) return 0;
  lua_pop(L, 1);
  return MB_EBADMSG;
}

/*
** lua_setupvalue and lua_upvaluejoin index the closure by the prototype's count: the blob,
** the closure and the prototype must agree before any upvalue is touched (bytecode_check already
** demands it; this also holds if the check is ever relaxed).
*/
static int upvalues_agree(lua_State *L, int f, unsigned nups) {
  if ((int)nups != upvalue_count(L, f)) return 0;
  if (nups == 0) return 1;
  if (!lua_getupvalue(L, f, (int)nups)) return 0;
  lua_pop(L, 1);
  return 1;
}

static int dec_join(lua_State *L, dec *d, int f, int i) {
  uint64_t id;
  unsigned n;
  int isfunc;
  if (rd_varint(&d->r, &id) || rd_byte(&d->r, &n) || id >= (uint64_t)d->nobj) return MB_EBADMSG;
  lua_rawgeti(L, d->objs, -(lua_Integer)id - 1);
  isfunc = lua_toboolean(L, -1);
  lua_pop(L, 1);
  if (!isfunc) return MB_EBADMSG;
  lua_rawgeti(L, d->objs, (lua_Integer)id + 1);
  if (n < 1 || (int)n > upvalue_count(L, -1)) return MB_EBADMSG;
  lua_upvaluejoin(L, f, i, -1, (int)n);
  lua_pop(L, 1);
  return 0;
}

static int dec_upval(lua_State *L, dec *d, int f, int i, int depth) {
  unsigned kind;
  if (rd_byte(&d->r, &kind)) return MB_EBADMSG;
  switch (kind) {
    case MSG_UV_VALUE:
      if (dec_value(L, d, depth)) return MB_EBADMSG;
      break;
    case MSG_UV_GLOBALS:
      lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_GLOBALS);
      break;
    case MSG_UV_JOIN:
      return dec_join(L, d, f, i);
    default:
      return MB_EBADMSG;
  }
  lua_setupvalue(L, f, i);
  return 0;
}

/* The function takes its object id before its upvalues, which may refer back to it. */
static int dec_func(lua_State *L, dec *d, int depth) {
  const unsigned char *code;
  size_t len;
  unsigned nups;
  int f, i;
  if (depth >= MB_MSG_MAXDEPTH || rd_bytes(&d->r, &code, &len)) return MB_EBADMSG;
  luaL_checkstack(L, 6, "message nested too deeply");
  if (load_code(L, code, len)) return MB_EBADMSG;
  f = lua_gettop(L);
  add_object(L, d, f, 1);
  if (rd_byte(&d->r, &nups) || !upvalues_agree(L, f, nups)) return MB_EBADMSG;
  for (i = 1; i <= (int)nups; i++)
    if (dec_upval(L, d, f, i, depth + 1)) return MB_EBADMSG;
  return 0;
}

/* Pushes package.loaded[name] (name at stack index `name`), or else require(name). */
static void push_module(lua_State *L, int name) {
  lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  if (lua_istable(L, -1)) {
    lua_pushvalue(L, name);
    lua_rawget(L, -2);
    lua_remove(L, -2);
  } else {
    lua_pop(L, 1);
    lua_pushnil(L);
  }
  if (!lua_isnil(L, -1)) return;
  lua_pop(L, 1);
  lua_getglobal(L, "require");
  lua_pushvalue(L, name);
  lua_call(L, 1, 1);
}

static int dec_module(lua_State *L, dec *d) {
  const unsigned char *s;
  size_t len;
  if (rd_bytes(&d->r, &s, &len)) return MB_EBADMSG;
  luaL_checkstack(L, 6, "message too complex");
  lua_pushlstring(L, (const char *)s, len);
  push_module(L, lua_gettop(L));
  lua_remove(L, -2);
  add_object(L, d, lua_gettop(L), 0);
  return 0;
}

static int dec_cfunc(lua_State *L, dec *d) {
  const unsigned char *m, *f;
  size_t mlen, flen;
  int base;
  if (rd_bytes(&d->r, &m, &mlen) || rd_bytes(&d->r, &f, &flen)) return MB_EBADMSG;
  luaL_checkstack(L, 8, "message too complex");
  lua_pushlstring(L, (const char *)m, mlen);
  base = lua_gettop(L);
  lua_pushlstring(L, (const char *)f, flen);
  push_module(L, base);
  if (lua_istable(L, -1)) {   /* not raw: _G and process fill themselves in on first use */
    lua_pushvalue(L, base + 1);
    lua_gettable(L, -2);
  } else {
    lua_pushnil(L);
  }
  if (!lua_iscfunction(L, -1))
    return luaL_error(L, "cannot resolve C function %s.%s", lua_tostring(L, base),
                      lua_tostring(L, base + 1));
  lua_replace(L, base);
  lua_settop(L, base);
  return 0;
}

static int dec_embed(lua_State *L, dec *d, int depth) {
  const unsigned char *s;
  size_t len;
  uint64_t n;
  dec sub;
  if (depth >= MB_MSG_MAXDEPTH || rd_bytes(&d->r, &s, &len)) return MB_EBADMSG;
  luaL_checkstack(L, 6, "message nested too deeply");
  dec_init(&sub, s, len);
  if (dec_blob(L, &sub, depth + 1, 1, &n)) return MB_EBADMSG;
  if (sub.objs) lua_remove(L, sub.objs);
  return 0;
}

static int dec_scalar(lua_State *L, dec *d, unsigned tag) {
  const unsigned char *s;
  size_t len;
  uint64_t v;
  double x;
  switch (tag) {
    case MSG_INT:
      if (rd_varint(&d->r, &v)) return MB_EBADMSG;
      lua_pushinteger(L, (lua_Integer)unzigzag(v));
      return 0;
    case MSG_FLOAT:
      if (rd_le(&d->r, 8, &v)) return MB_EBADMSG;
      memcpy(&x, &v, sizeof x);
      lua_pushnumber(L, (lua_Number)x);
      return 0;
    case MSG_STR:
      if (rd_bytes(&d->r, &s, &len)) return MB_EBADMSG;
      lua_pushlstring(L, (const char *)s, len);
      return 0;
    default: /* MSG_TERM */
      if (rd_le(&d->r, 8, &v) || !term_is(v)) return MB_EBADMSG;
      lua_pushlightuserdata(L, (void *)(uintptr_t)v);
      return 0;
  }
}

static int dec_socket(lua_State *L, dec *d) {
  uint64_t id;
  if (rd_le(&d->r, 8, &id)) return MB_EBADMSG;
  lnet_push_socket(L, id);
  return 0;
}

static int dec_value(lua_State *L, dec *d, int depth) {
  unsigned tag;
  if (rd_byte(&d->r, &tag)) return MB_EBADMSG;
  switch (tag) {
    case MSG_NIL: lua_pushnil(L); return 0;
    case MSG_FALSE: lua_pushboolean(L, 0); return 0;
    case MSG_TRUE: lua_pushboolean(L, 1); return 0;
    case MSG_INT: case MSG_FLOAT: case MSG_STR: case MSG_TERM: return dec_scalar(L, d, tag);
    case MSG_SOCKET: return dec_socket(L, d);
    case MSG_TABLE: return dec_table(L, d, depth);
    case MSG_OBJREF: return dec_objref(L, d);
    case MSG_FUNC: return dec_func(L, d, depth);
    case MSG_MODULE: return dec_module(L, d);
    case MSG_CFUNC: return dec_cfunc(L, d);
    case MSG_EMBED: return dec_embed(L, d, depth);
    default: return MB_EBADMSG;
  }
}

int msg_decode(lua_State *L, const unsigned char *p, size_t len) {
  int base = lua_gettop(L);
  uint64_t n;
  dec d;
  luaL_checkstack(L, 4, "message too complex");
  dec_init(&d, p, len);
  if (dec_blob(L, &d, 0, 0, &n)) {
    lua_settop(L, base);
    return MB_EBADMSG;
  }
  if (d.objs) lua_remove(L, d.objs);
  return (int)n;
}

/* }================================================================== */

/* {==================================================================
** Printer (msg_format) and msg_is_string
** =================================================================== */

enum { OBJ_TABLE, OBJ_OPEN, OBJ_FUNC, OBJ_MODULE };
enum { FMT_CUT = 1 };  /* internal: the output reached FMT_LIMIT */

typedef struct fobj {
  int kind;
  const unsigned char *name;  /* OBJ_MODULE, points into the blob */
  size_t len;
} fobj;

/* Printer state. Objects are tracked so that an OBJREF can say <cycle> or {...}. */
typedef struct fmt {
  rd r;
  msg_buf *out;
  msg_buf tmp;   /* one escaped string */
  size_t start;  /* out->len on entry: the limit counts only what this call wrote */
  int quiet;     /* > 0 while walking upvalues, which are parsed but not printed */
  fobj *o;
  size_t n, cap;
} fmt;

static int fmt_value(fmt *f, int depth);

static int put(fmt *f, const void *s, size_t n) {
  size_t used;
  int rc;
  if (f->quiet) return 0;
  used = f->out->len - f->start;
  if (used + n <= FMT_LIMIT) return msg_buf_add(f->out, s, n);
  rc = msg_buf_add(f->out, s, FMT_LIMIT - used);
  return rc ? rc : FMT_CUT;
}

static int puts_(fmt *f, const char *s) { return put(f, s, strlen(s)); }

/* Escapes at most FMT_LIMIT bytes: any more could not be printed anyway. */
static int put_escaped(fmt *f, const unsigned char *s, size_t len, const char *quote) {
  int rc;
  if (f->quiet) return 0;
  f->tmp.len = 0;
  if (escape(&f->tmp, (const char *)s, len > FMT_LIMIT ? FMT_LIMIT : len, 1)) return MB_ENOMEM;
  if ((rc = puts_(f, quote)) != 0 || (rc = put(f, f->tmp.p, f->tmp.len)) != 0) return rc;
  return puts_(f, quote);
}

static int add_fobj(fmt *f, int kind, const unsigned char *name, size_t len) {
  if (f->n == f->cap) {
    size_t cap = f->cap ? f->cap * 2 : 16;
    fobj *o = realloc(f->o, cap * sizeof *o);
    if (!o) return MB_ENOMEM;
    f->o = o;
    f->cap = cap;
  }
  f->o[f->n].kind = kind;
  f->o[f->n].name = name;
  f->o[f->n].len = len;
  f->n++;
  return 0;
}

/* "%.14g", but a float that would read as an integer gets ".0" (1.0, -0.0, 1e+15 stays). */
static int fmt_float(fmt *f, double x) {
  char buf[64];
  if (isnan(x)) return puts_(f, "nan");
  if (isinf(x)) return puts_(f, x > 0 ? "inf" : "-inf");
  snprintf(buf, sizeof buf - 2, "%.14g", x);
  if (strspn(buf, "-0123456789") == strlen(buf)) strcat(buf, ".0");
  return puts_(f, buf);
}

static int fmt_scalar(fmt *f, unsigned tag) {
  const unsigned char *s;
  size_t len;
  uint64_t v;
  double x;
  char buf[64];
  switch (tag) {
    case MSG_INT:
      if (rd_varint(&f->r, &v)) return MB_EBADMSG;
      snprintf(buf, sizeof buf, "%lld", (long long)unzigzag(v));
      return puts_(f, buf);
    case MSG_FLOAT:
      if (rd_le(&f->r, 8, &v)) return MB_EBADMSG;
      memcpy(&x, &v, sizeof x);
      return fmt_float(f, x);
    case MSG_STR:
      if (rd_bytes(&f->r, &s, &len)) return MB_EBADMSG;
      return put_escaped(f, s, len, "\"");
    default: /* MSG_TERM */
      if (rd_le(&f->r, 8, &v) || !term_is(v)) return MB_EBADMSG;
      term_format(v, buf, sizeof buf);
      return puts_(f, buf);
  }
}

/* A hash-part key: name = , ["text"] = or [value] = . */
static int fmt_key(fmt *f, int depth) {
  const unsigned char *s;
  size_t len;
  int rc;
  if (f->r.p == f->r.end) return MB_EBADMSG;
  if (*f->r.p != MSG_STR) {
    if ((rc = puts_(f, "[")) != 0 || (rc = fmt_value(f, depth)) != 0) return rc;
    return puts_(f, "] = ");
  }
  f->r.p++;
  if (rd_bytes(&f->r, &s, &len)) return MB_EBADMSG;
  if (is_ident((const char *)s, len)) {
    rc = put(f, s, len);
    return rc ? rc : puts_(f, " = ");
  }
  if ((rc = puts_(f, "[")) != 0 || (rc = put_escaped(f, s, len, "\"")) != 0) return rc;
  return puts_(f, "] = ");
}

static int fmt_table(fmt *f, int depth) {
  uint64_t narr, nhash, i;
  size_t id = f->n;
  int rc;
  if (depth >= MB_MSG_MAXDEPTH || rd_le(&f->r, 4, &narr) || rd_le(&f->r, 4, &nhash) ||
      narr + 2 * nhash > rd_left(&f->r))
    return MB_EBADMSG;
  if ((rc = add_fobj(f, OBJ_OPEN, NULL, 0)) != 0 || (rc = puts_(f, "{")) != 0) return rc;
  for (i = 0; i < narr + nhash; i++) {
    if (i && (rc = puts_(f, ", ")) != 0) return rc;
    if (i >= narr && (rc = fmt_key(f, depth + 1)) != 0) return rc;
    if ((rc = fmt_value(f, depth + 1)) != 0) return rc;
  }
  f->o[id].kind = OBJ_TABLE;
  return puts_(f, "}");
}

static int fmt_socket(fmt *f) {
  uint64_t id;
  char buf[48];
  if (rd_le(&f->r, 8, &id)) return MB_EBADMSG;
  snprintf(buf, sizeof buf, "#Port<0.%llu>", (unsigned long long)id);
  return puts_(f, buf);
}

static int fmt_ref(fmt *f) {
  uint64_t id;
  int rc;
  if (rd_varint(&f->r, &id) || id >= f->n) return MB_EBADMSG;
  switch (f->o[id].kind) {
    case OBJ_OPEN: return puts_(f, "<cycle>");
    case OBJ_TABLE: return puts_(f, "{...}");
    case OBJ_FUNC: return puts_(f, "<function>");
    default:
      if ((rc = puts_(f, "<module ")) != 0) return rc;
      if ((rc = put_escaped(f, f->o[id].name, f->o[id].len, "")) != 0) return rc;
      return puts_(f, ">");
  }
}

/* Upvalues are walked (they hold objects that later OBJREFs count on) but not printed. */
static int fmt_upvals(fmt *f, unsigned nups, int depth) {
  unsigned i, kind, n;
  uint64_t id;
  for (i = 0; i < nups; i++) {
    if (rd_byte(&f->r, &kind)) return MB_EBADMSG;
    if (kind == MSG_UV_VALUE) {
      int rc = fmt_value(f, depth);
      if (rc) return rc;
    } else if (kind == MSG_UV_JOIN) {
      if (rd_varint(&f->r, &id) || rd_byte(&f->r, &n) || id >= f->n) return MB_EBADMSG;
    } else if (kind != MSG_UV_GLOBALS) {
      return MB_EBADMSG;
    }
  }
  return 0;
}

static int fmt_func(fmt *f, int depth) {
  const unsigned char *code;
  size_t len;
  unsigned nups;
  int rc;
  if (depth >= MB_MSG_MAXDEPTH || rd_bytes(&f->r, &code, &len) || rd_byte(&f->r, &nups))
    return MB_EBADMSG;
  if ((rc = add_fobj(f, OBJ_FUNC, NULL, 0)) != 0) return rc;
  f->quiet++;
  rc = fmt_upvals(f, nups, depth + 1);
  f->quiet--;
  return rc ? rc : puts_(f, "<function>");
}

static int fmt_named(fmt *f, unsigned tag) {
  const unsigned char *m, *fld;
  size_t mlen, flen;
  int rc;
  if (rd_bytes(&f->r, &m, &mlen)) return MB_EBADMSG;
  if (tag == MSG_MODULE) {
    if ((rc = add_fobj(f, OBJ_MODULE, m, mlen)) != 0 || (rc = puts_(f, "<module ")) != 0 ||
        (rc = put_escaped(f, m, mlen, "")) != 0)
      return rc;
    return puts_(f, ">");
  }
  if (rd_bytes(&f->r, &fld, &flen)) return MB_EBADMSG;
  if ((rc = puts_(f, "<function ")) != 0 || (rc = put_escaped(f, m, mlen, "")) != 0 ||
      (rc = puts_(f, ".")) != 0 || (rc = put_escaped(f, fld, flen, "")) != 0)
    return rc;
  return puts_(f, ">");
}

static int fmt_blob(fmt *f, int depth, int one);

/* An embedded blob prints inline, with its own object ids. */
static int fmt_embed(fmt *f, int depth) {
  const unsigned char *s;
  size_t len;
  fobj *o = f->o;
  size_t n = f->n, cap = f->cap;
  rd outer;
  int rc;
  if (depth >= MB_MSG_MAXDEPTH || rd_bytes(&f->r, &s, &len)) return MB_EBADMSG;
  outer = f->r;
  rd_init(&f->r, s, len);
  f->o = NULL;
  f->n = f->cap = 0;
  rc = fmt_blob(f, depth + 1, 1);
  free(f->o);
  f->o = o;
  f->n = n;
  f->cap = cap;
  f->r = outer;
  return rc;
}

static int fmt_value(fmt *f, int depth) {
  unsigned tag;
  if (rd_byte(&f->r, &tag)) return MB_EBADMSG;
  switch (tag) {
    case MSG_NIL: return puts_(f, "nil");
    case MSG_FALSE: return puts_(f, "false");
    case MSG_TRUE: return puts_(f, "true");
    case MSG_INT: case MSG_FLOAT: case MSG_STR: case MSG_TERM: return fmt_scalar(f, tag);
    case MSG_SOCKET: return fmt_socket(f);
    case MSG_TABLE: return fmt_table(f, depth);
    case MSG_OBJREF: return fmt_ref(f);
    case MSG_FUNC: return fmt_func(f, depth);
    case MSG_MODULE: case MSG_CFUNC: return fmt_named(f, tag);
    case MSG_EMBED: return fmt_embed(f, depth);
    default: return MB_EBADMSG;
  }
}

static int fmt_blob(fmt *f, int depth, int one) {
  uint64_t n, i;
  int rc;
  if (rd_varint(&f->r, &n) || (n >>= 1) > rd_left(&f->r) || (one && n != 1))
    return MB_EBADMSG;
  for (i = 0; i < n; i++) {
    if (i && (rc = puts_(f, ", ")) != 0) return rc;
    if ((rc = fmt_value(f, depth)) != 0) return rc;
  }
  return f->r.p == f->r.end ? 0 : MB_EBADMSG;
}

int msg_format(const unsigned char *p, size_t len, msg_buf *out) {
  fmt f;
  int rc;
  memset(&f, 0, sizeof f);
  rd_init(&f.r, p, len);
  f.out = out;
  f.start = out->len;
  rc = fmt_blob(&f, 0, 0);
  free(f.o);
  msg_buf_free(&f.tmp);
  if (rc == FMT_CUT) return buf_str(out, "...");
  if (rc == MB_EBADMSG) {
    if (out->len > f.start && out->p[out->len - 1] != ' ' && buf_byte(out, ' '))
      return MB_ENOMEM;
    return buf_str(out, "<bad message>") ? MB_ENOMEM : MB_EBADMSG;
  }
  return rc;
}

int msg_is_string(const unsigned char *p, size_t len, const char *s) {
  const unsigned char *str;
  size_t slen;
  uint64_t n;
  unsigned tag;
  rd r;
  rd_init(&r, p, len);
  if (rd_varint(&r, &n) || n >> 1 != 1 || rd_byte(&r, &tag) || tag != MSG_STR ||
      rd_bytes(&r, &str, &slen) || r.p != r.end)
    return 0;
  return slen == strlen(s) && memcmp(str, s, slen) == 0;
}

/* }================================================================== */
