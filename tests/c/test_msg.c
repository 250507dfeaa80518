/* test_msg.c — msg.c: values copied between two Lua states, refusals, hostile blobs, printing. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>

#include "mbconf.h"
#include "moonbeam.h"
/* msg.h's comment on msg_encode contains the text "*out/" + "*outlen", which -Wcomment flags. */
#include "msg.h"
#include "pid.h"
#include "test.h"

static lua_State *S, *R;  /* sender and receiver */
static msg_enc *enc;      /* one encoder for the whole run: every test also checks its reuse */
static msg_buf last;      /* a copy of the last blob send() produced */
static int fail_allocs;   /* set: the test allocator refuses to grow anything */

/* {==================================================================
** Helpers
** =================================================================== */

/*
** Corrupted bytecode can ask for gigabytes; refusing large blocks turns that into a Lua
** memory error instead of a sanitizer abort.
*/
static void *test_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  (void)ud;
  if (nsize == 0) {
    free(ptr);
    return NULL;
  }
  if (nsize > ((size_t)64 << 20) || (fail_allocs && (ptr == NULL || nsize > osize))) return NULL;
  return realloc(ptr, nsize);
}

static int panic(lua_State *L) {
  fprintf(stderr, "lua panic: %s\n", lua_tostring(L, -1));
  abort();
}

static lua_State *new_state(void) {
  lua_State *L = lua_newstate(test_alloc, NULL);
  lua_atpanic(L, panic);
  luaL_openlibs(L);
  return L;
}

/* Runs code in L, leaving its results on the stack; returns their count, -1 on error. */
static int run(lua_State *L, const char *code) {
  int top = lua_gettop(L);
  if (luaL_loadstring(L, code) || lua_pcall(L, 0, LUA_MULTRET, 0)) {
    printf("  lua error: %s\n", lua_tostring(L, -1));
    lua_settop(L, top);
    return -1;
  }
  return lua_gettop(L) - top;
}

/* 1 if code runs in L and its first result is true. */
static int truthy(lua_State *L, const char *code) {
  int top = lua_gettop(L), n = run(L, code), ok = n > 0 && lua_toboolean(L, top + 1);
  lua_settop(L, top);
  return ok;
}

static void set_global_term(lua_State *L, const char *name, uint64_t v) {
  lua_pushlightuserdata(L, (void *)(uintptr_t)v);
  lua_setglobal(L, name);
}

/* Pops n decoded values of R into globals v1..vn, and v = v1. */
static void set_results(int n) {
  char name[16];
  int i;
  for (i = n; i >= 1; i--) {
    snprintf(name, sizeof name, "v%d", i);
    if (i == 1) {
      lua_pushvalue(R, -1);
      lua_setglobal(R, "v");
    }
    lua_setglobal(R, name);
  }
}

/* Encodes the n values on top of S (popping them) into `last`; returns 0 or the error. */
static int encode_top(int n, const char *root) {
  const unsigned char *p;
  size_t len;
  int base = lua_gettop(S) - n;
  int rc = msg_encode(S, base + 1, n, enc, root, &p, &len);
  if (rc == 0) {
    last.len = 0;
    msg_buf_add(&last, p, len);
  }
  lua_settop(S, base);
  return rc;
}

/* Copies the results of code in S to R's globals v (= v1), v2, ...; returns their count. */
static int send(const char *code) {
  int rtop = lua_gettop(R), n = run(S, code), rc;
  if (n < 0) return MB_ELUA;
  if ((rc = encode_top(n, "msg")) != 0) return rc;
  rc = msg_decode(R, last.p, last.len);
  if (rc < 0) return rc;
  CHECK(lua_gettop(R) == rtop + rc);
  set_results(rc);
  return rc;
}

static char refusal_text[16384];

/*
** Encodes the values on top of S expecting a refusal; checks that the message is on top of
** the untouched values and returns it.
*/
static const char *refused_top(int n, const char *root) {
  const unsigned char *p;
  size_t len;
  int base = lua_gettop(S) - n, rc = msg_encode(S, base + 1, n, enc, root, &p, &len);
  refusal_text[0] = '\0';
  CHECK(rc == MB_EUNCOPYABLE);
  if (rc == MB_EUNCOPYABLE) {
    CHECK(lua_gettop(S) == base + n + 1 && lua_type(S, -1) == LUA_TSTRING);
    snprintf(refusal_text, sizeof refusal_text, "%s", lua_tostring(S, -1));
  }
  lua_settop(S, base);
  return refusal_text;
}

static const char *refusal(const char *code, const char *root) {
  int n = run(S, code);
  return n < 0 ? "(lua error)" : refused_top(n, root);
}

static int contains(const msg_buf *b, const char *needle, size_t n) {
  size_t i;
  for (i = 0; i + n <= b->len; i++)
    if (memcmp(b->p + i, needle, n) == 0) return 1;
  return 0;
}

typedef struct job {
  const unsigned char *p;
  size_t len;
  int rc, stack_ok;
} job;

static int decode_job(lua_State *L) {
  job *j = lua_touserdata(L, 1);
  int top = lua_gettop(L);
  j->rc = msg_decode(L, j->p, j->len);
  j->stack_ok = lua_gettop(L) == top + (j->rc >= 0 ? j->rc : 0);
  return 0;
}

/* Decodes in R under lua_pcall and drops the results; MB_ELUA when the decoder raised. */
static int pdecode(const unsigned char *p, size_t len, int *stack_ok) {
  job j;
  int top = lua_gettop(R);
  j.p = p;
  j.len = len;
  j.rc = MB_ELUA;
  j.stack_ok = 1;
  lua_pushcfunction(R, decode_job);
  lua_pushlightuserdata(R, &j);
  if (lua_pcall(R, 1, 0, 0) != LUA_OK) j.rc = MB_ELUA;
  lua_settop(R, top);
  *stack_ok = j.stack_ok;
  return j.rc;
}

/* Decodes a blob directly in R; checks that a refusal leaves the stack as it was. */
static int decode_rc(const msg_buf *b) {
  int top = lua_gettop(R), rc = msg_decode(R, b->p, b->len);
  if (rc < 0) CHECK(lua_gettop(R) == top);
  lua_settop(R, top);
  return rc;
}

static char format_text[8192];

static const char *format(const msg_buf *b, int *rc) {
  msg_buf out;
  msg_buf_init(&out);
  *rc = msg_format(b->p, b->len, &out);
  snprintf(format_text, sizeof format_text, "%.*s", (int)out.len, out.p ? (char *)out.p : "");
  msg_buf_free(&out);
  return format_text;
}

/* Formats the results of code in S. */
static const char *format_of(const char *code) {
  int n = run(S, code), rc;
  const char *s;
  if (n < 0 || encode_top(n, "msg") != 0) return "(encode failed)";
  s = format(&last, &rc);
  CHECK(rc == 0);
  return s;
}

static uint64_t read_varint(const unsigned char **p) {
  uint64_t v = 0;
  unsigned shift = 0;
  while (**p & 0x80) v |= (uint64_t)(*(*p)++ & 0x7f) << shift, shift += 7;
  return v | (uint64_t)(*(*p)++) << shift;
}

/* }================================================================== */

/* {==================================================================
** Round trips
** =================================================================== */

TEST(scalars) {
  CHECK(send("return nil, false, true") == 3);
  CHECK(truthy(R, "return v1 == nil and v2 == false and v3 == true"));
  CHECK(send("return 0, -1, math.maxinteger, math.mininteger, {7, -7}") == 5);
  CHECK(truthy(R, "return v1 == 0 and v2 == -1 and v3 == math.maxinteger and "
                  "v4 == math.mininteger and v5[1] == 7 and v5[2] == -7"));
  CHECK(truthy(R, "for _, x in ipairs{v1, v2, v3, v4, v5[1], v5[2]} do "
                  "if math.type(x) ~= 'integer' then return false end end return true"));
  CHECK(send("return 1.0, -0.0, 0.5, 1/0, -1/0, 0/0, {2.0}") == 7);
  CHECK(truthy(R, "return v1 == 1 and 1/v2 == -1/0 and v3 == 0.5 and v4 == 1/0 and "
                  "v5 == -1/0 and v6 ~= v6 and v7[1] == 2"));
  CHECK(truthy(R, "for _, x in ipairs{v1, v2, v3, v4, v5, v6, v7[1]} do "
                  "if math.type(x) ~= 'float' then return false end end return true"));
  CHECK(truthy(R, "return 1/v2 ~= 1/0"));
}

TEST(strings) {
  CHECK(send("local t = {} for i = 0, 255 do t[#t + 1] = string.char(i) end "
             "return table.concat(t), 'a\\0b', '', {['\\0'] = '\\0\\0'}") == 4);
  CHECK(truthy(R, "local t = {} for i = 0, 255 do t[#t + 1] = string.char(i) end "
                  "return v1 == table.concat(t) and #v1 == 256"));
  CHECK(truthy(R, "return v2 == 'a\\0b' and #v2 == 3 and v3 == '' and v4['\\0'] == '\\0\\0'"));
}

TEST(tables) {
  CHECK(send("return {}, {1, {2, {3, {4}}}}, "
             "{1, 2, 3, x = 'y', [10] = true, [-1] = 0, [1.5] = 'f', [false] = 1}, "
             "{1, nil, 3, nil, 5}, {[{1}] = 'k'}") == 5);
  CHECK(truthy(R, "return type(v1) == 'table' and next(v1) == nil"));
  CHECK(truthy(R, "return v2[1] == 1 and v2[2][1] == 2 and v2[2][2][2][1] == 4"));
  CHECK(truthy(R, "local n = 0 for _ in pairs(v3) do n = n + 1 end "
                  "return n == 8 and v3[1] == 1 and v3[3] == 3 and v3.x == 'y' and "
                  "v3[10] == true and v3[-1] == 0 and v3[1.5] == 'f' and v3[false] == 1"));
  CHECK(truthy(R, "local n = 0 for _ in pairs(v4) do n = n + 1 end "
                  "return n == 3 and v4[1] == 1 and v4[2] == nil and v4[3] == 3 and v4[5] == 5"));
  CHECK(truthy(R, "local k, x = next(v5) return type(k) == 'table' and k[1] == 1 and x == 'k'"));
  CHECK(send("return setmetatable({a = 1}, {__index = function() return 'meta' end})") == 1);
  CHECK(truthy(R, "return getmetatable(v) == nil and v.a == 1 and v.b == nil"));
}

TEST(terms) {
  uint64_t pid = pid_make(5, 3), ref = ref_make(123456789);
  set_global_term(S, "p", pid);
  set_global_term(S, "r", ref);
  set_global_term(S, "a", TERM_ANY);
  set_global_term(R, "ep", pid);
  set_global_term(R, "er", ref);
  set_global_term(R, "ea", TERM_ANY);
  CHECK(send("return p, {r, [p] = a}") == 2);
  CHECK(truthy(R, "return v1 == ep and v2[1] == er and v2[ep] == ea and v1 ~= er"));
  lua_getglobal(R, "v1");
  CHECK((uint64_t)(uintptr_t)lua_touserdata(R, -1) == pid);
  lua_pop(R, 1);
}

TEST(cycles_and_sharing) {
  CHECK(send("local t = {} t.self = t local s = {} local a = {} a[1] = a "
             "local k = {} k[k] = k return t, {a = s, b = s}, s, a, k") == 5);
  CHECK(truthy(R, "return v1.self == v1 and v2.a == v2.b and v3 == v2.a and v4[1] == v4"));
  CHECK(truthy(R, "local k, x = next(v5) return k == v5 and x == v5"));
}

/* }================================================================== */

/* {==================================================================
** Functions
** =================================================================== */

TEST(closures) {
  CHECK(send("local n = 41 return function() return n + 1 end") == 1);
  CHECK(truthy(R, "return v() == 42"));
  CHECK(send("local n = 0 local function inc() n = n + 1 return n end "
             "local function get() return n end return {inc = inc, get = get}, get") == 2);
  CHECK(truthy(R, "v.inc() v.inc() return v.get() == 2 and v2() == 2"));
  CHECK(send("local function fact(n) if n <= 1 then return 1 end return n * fact(n - 1) end "
             "return fact") == 1);
  CHECK(truthy(R, "return v(5) == 120"));
  CHECK(send("local cfg = {a = {b = 7}} return function() return cfg.a.b end") == 1);
  CHECK(truthy(R, "return v() == 7"));
}

TEST(globals_are_the_receivers) {
  CHECK(run(S, "x = 'sender'") == 0);
  CHECK(run(R, "x = 'receiver'") == 0);
  CHECK(send("return function() return x end, function(y) z = y end") == 2);
  CHECK(truthy(R, "v2(5) return v1() == 'receiver' and z == 5"));
  CHECK(send("local _ENV = {x = 'private'} return function() return x end") == 1);
  CHECK(truthy(R, "return v() == 'receiver'"));
  /* stripped: the _ENV upvalue has no name, but it holds _G, which package.loaded knows */
  CHECK(send("return load(string.dump(function() return x end, true))") == 1);
  CHECK(truthy(R, "return v() == 'receiver'"));
}

TEST(c_functions_travel_by_name) {
  CHECK(send("local fmt = string.format return function(x) return fmt('%d!', x) end") == 1);
  CHECK(truthy(R, "return v(3) == '3!'"));
  CHECK(contains(&last, "\x0B\x06string\x06" "format", 15));
  CHECK(send("local print = print return function() return print end") == 1);
  CHECK(truthy(R, "return rawequal(v(), print)"));
  CHECK(contains(&last, "\x0B\x02_G\x05print", 10));
  CHECK(send("return {f = string.rep, [table.concat] = 1}") == 1);
  CHECK(truthy(R, "return v.f == string.rep and v[table.concat] == 1"));
}

TEST(modules_bind_in_the_receiver) {
  CHECK(send("local s = string return function() return s end") == 1);
  CHECK(truthy(R, "return rawequal(v(), string)"));
  CHECK(contains(&last, "\x0A\x06string", 8));
  CHECK(run(S, "package.loaded.mymod = {name = 'sender'}") == 0);
  CHECK(run(R, "package.loaded.mymod = {name = 'receiver'}") == 0);
  CHECK(send("local m = require 'mymod' return function() return m.name end") == 1);
  CHECK(truthy(R, "return v() == 'receiver'"));
  CHECK(run(S, "package.loaded.lazymod = {name = 'sender'}") == 0);
  CHECK(run(R, "package.preload.lazymod = function() return {name = 'lazy'} end") == 0);
  CHECK(send("local m = package.loaded.lazymod return function() return m.name end") == 1);
  CHECK(truthy(R, "return v() == 'lazy' and package.loaded.lazymod.name == 'lazy'"));
}

/* }================================================================== */

/* {==================================================================
** Refusals
** =================================================================== */

static int not_exported(lua_State *L) {
  (void)L;
  return 0;
}

TEST(refusal_messages) {
  static int x;
  CHECK_STR(refusal("return {items = {1, 2, {conn = io.stdout}}}", "msg"),
            "msg.items[3].conn: userdata cannot be sent");
  CHECK_STR(refusal("return coroutine.create(print)", "msg"), "msg: thread cannot be sent");
  CHECK_STR(refusal("local sock = io.stdout return {f = function() return sock end}", "msg"),
            "msg.f<upvalue sock>: userdata cannot be sent");
  lua_pushcfunction(S, not_exported);
  CHECK_STR(refused_top(1, "msg"), "msg: C function cannot be sent");
  CHECK_STR(refusal("return 1, io.stdout, 3", "arg"), "arg #2: userdata cannot be sent");
  lua_pushlightuserdata(S, &x);
  CHECK_STR(refused_top(1, "msg"), "msg: light userdata cannot be sent");
  CHECK_STR(refusal("return {[io.stdout] = 1}", "msg"),
            "msg[<userdata>]: userdata key cannot be sent");
  CHECK_STR(refusal("return {a = {[io.stdout] = true}}", "msg"),
            "msg.a[<userdata>]: userdata key cannot be sent");
}

TEST(refusal_paths) {
  CHECK_STR(refusal("return {['end'] = {['x y'] = {[1.5] = {[true] = {[10] = "
                    "{['a\\n\"b\\\\'] = io.stdout}}}}}}", "msg"),
            "msg[\"end\"][\"x y\"][1.5][true][10][\"a\\010\\\"b\\\\\"]: userdata cannot be sent");
  CHECK_STR(refusal("return {[{}] = io.stdout}", "m"), "m[<table>]: userdata cannot be sent");
  CHECK_STR(refusal("return {[{io.stdout}] = 1}", "m"), "m[<table>][1]: userdata cannot be sent");
  CHECK_STR(refusal("return {[p] = {[print] = io.stdout}}", "m"),
            "m[<pid>][<function>]: userdata cannot be sent");
  CHECK_STR(refusal("return {[coroutine.create(print)] = 1}", "m"),
            "m[<thread>]: thread key cannot be sent");
  CHECK_STR(refusal("local sock = io.stdout local t = {} "
                    "local function f() return t, sock end "
                    "t.g = function() return f end return t", "m"),
            "m.g<upvalue f><upvalue sock>: userdata cannot be sent");
}

TEST(encoder_works_after_refusal) {
  int top = lua_gettop(S);
  CHECK_STR(refusal("return {1, 2, io.stderr}", "msg"), "msg[3]: userdata cannot be sent");
  CHECK(lua_gettop(S) == top);
  CHECK(send("return {1, 2, 3}") == 1);
  CHECK(truthy(R, "return #v == 3 and v[3] == 3"));
}

static char deep_code[128];

static const char *deep_table(int levels) {
  snprintf(deep_code, sizeof deep_code,
           "local t = {} for i = 2, %d do t = {t} end return t", levels);
  return deep_code;
}

TEST(depth_limit) {
  static char want[4 * MB_MSG_MAXDEPTH + 128];
  size_t n = 0;
  int i;
  n += (size_t)snprintf(want, sizeof want, "msg");
  for (i = 0; i < MB_MSG_MAXDEPTH; i++) n += (size_t)snprintf(want + n, sizeof want - n, "[1]");
  snprintf(want + n, sizeof want - n, ": table nested deeper than %d levels cannot be sent",
           MB_MSG_MAXDEPTH);
  CHECK_STR(refusal(deep_table(MB_MSG_MAXDEPTH + 1), "msg"), want);
  CHECK(strstr(want, "nested deeper than 2000 levels") != NULL || MB_MSG_MAXDEPTH != 2000);
  CHECK(send(deep_table(MB_MSG_MAXDEPTH - 10)) == 1);
  snprintf(deep_code, sizeof deep_code,
           "local n, t = 1, v while t[1] do n, t = n + 1, t[1] end return n == %d",
           MB_MSG_MAXDEPTH - 10);
  CHECK(truthy(R, deep_code));
  CHECK(send(deep_table(MB_MSG_MAXDEPTH)) == 1);
}

TEST(decoder_depth_limit) {
  msg_buf b;
  int i;
  msg_buf_init(&b);
  msgb_count(&b, 1);
  for (i = 0; i < MB_MSG_MAXDEPTH; i++) msgb_table(&b, 1, 0);
  msgb_nil(&b);
  CHECK(decode_rc(&b) == 1);
  b.len = 0;
  msgb_count(&b, 1);
  for (i = 0; i <= MB_MSG_MAXDEPTH; i++) msgb_table(&b, 1, 0);
  msgb_nil(&b);
  CHECK(decode_rc(&b) == MB_EBADMSG);
  msg_buf_free(&b);
}

static int encode_entered;

static int encode_job(lua_State *L) {
  const unsigned char *p;
  size_t len;
  encode_entered = 1;
  lua_pushinteger(L, msg_encode(L, 1, 1, enc, "msg", &p, &len));
  return 1;
}

/*
** A Lua error in the middle of msg_encode: a fresh thread must grow its stack to walk a deep
** table, and the allocator refuses, so luaL_checkstack raises through the encoder.
*/
TEST(encoder_survives_lua_error) {
  lua_State *T = lua_newthread(S);
  int rc;
  CHECK(run(T, deep_table(1500)) == 1);
  lua_pushcfunction(T, encode_job);
  lua_insert(T, 1);
  fail_allocs = 1;
  rc = lua_pcall(T, 1, 1, 0);
  fail_allocs = 0;
  CHECK(rc != LUA_OK && encode_entered);
  lua_pop(S, 1);
  CHECK(send(deep_table(1500)) == 1);
  CHECK(send("return {1, {2}, 'three'}") == 1);
  CHECK(truthy(R, "return v[2][1] == 2 and v[3] == 'three'"));
}

/* }================================================================== */

/* {==================================================================
** Hostile blobs
** =================================================================== */

static const char *const samples[] = {
  "return {1, 'two', {3}, x = {y = true}, [2.5] = -7, [false] = 0.25}",
  ("local n = 0 local function inc() n = n + 1 return n end "
   "local function get() return n end return {inc = inc, get = get}"),
  "local s, fmt = string, string.format return function(x) return fmt('%d', x), s, print end",
  "local t = {} t.self = t return t, t, 'a string', 1.5, math.mininteger, p",
  "local function fact(n) if n <= 1 then return 1 end return n * fact(n - 1) end return fact",
  "return 'just a string'",
  "return string.format, print, nil, true",
  "local m = require 'mymod' return function() return m.name end, m",
};
enum { NSAMPLES = sizeof samples / sizeof samples[0] };

static msg_buf blobs[NSAMPLES + 1];

/* The samples encoded, plus an EXIT message with an embedded reason built in C. */
static void make_blobs(void) {
  msg_buf reason;
  int i;
  for (i = 0; i < NSAMPLES; i++) {
    int n = run(S, samples[i]);
    CHECK(n > 0 && encode_top(n, "msg") == 0);
    msg_buf_init(&blobs[i]);
    msg_buf_add(&blobs[i], last.p, last.len);
  }
  msg_buf_init(&reason);
  msgb_count(&reason, 1);
  msgb_table(&reason, 2, 1);
  msgb_str(&reason, "shutdown", 8);
  msgb_int(&reason, 42);
  msgb_str(&reason, "why", 3);
  msgb_float(&reason, 0.5);
  msg_buf_init(&blobs[NSAMPLES]);
  msgb_count(&blobs[NSAMPLES], 1);
  msgb_table(&blobs[NSAMPLES], 3, 0);
  msgb_str(&blobs[NSAMPLES], "EXIT", 4);
  msgb_term(&blobs[NSAMPLES], pid_make(5, 3));
  msgb_embed(&blobs[NSAMPLES], reason.p, reason.len);
  msg_buf_free(&reason);
}

TEST(truncated_blobs) {
  int i, ok, bad = 0;
  size_t n;
  for (i = 0; i <= NSAMPLES; i++) {
    CHECK(pdecode(blobs[i].p, blobs[i].len, &ok) >= 0 && ok);
    for (n = 0; n < blobs[i].len; n++)
      if (pdecode(blobs[i].p, n, &ok) != MB_EBADMSG || !ok) bad++;
  }
  CHECK(bad == 0);
  CHECK(pdecode(NULL, 0, &ok) == MB_EBADMSG && ok);
}

/* Decodes and formats a damaged blob: any outcome but a crash or a messed-up stack is fine. */
static int survives(const unsigned char *p, size_t len) {
  msg_buf out;
  int ok, rc = pdecode(p, len, &ok), frc;
  msg_buf_init(&out);
  frc = msg_format(p, len, &out);
  msg_buf_free(&out);
  (void)msg_is_string(p, len, "just a string");
  return ok && (rc >= 0 || rc == MB_EBADMSG || rc == MB_ELUA) &&
         (frc == 0 || frc == MB_EBADMSG);
}

TEST(corrupted_blobs_every_byte) {
  static const unsigned char masks[] = {0x01, 0x10, 0x80, 0xFF};
  unsigned char *copy;
  int i, bad = 0;
  size_t pos, m;
  for (i = 0; i <= NSAMPLES; i++) {
    copy = malloc(blobs[i].len);
    memcpy(copy, blobs[i].p, blobs[i].len);
    for (pos = 0; pos < blobs[i].len; pos++)
      for (m = 0; m < sizeof masks; m++) {
        copy[pos] ^= masks[m];
        if (!survives(copy, blobs[i].len)) bad++;
        copy[pos] ^= masks[m];
      }
    free(copy);
  }
  CHECK(bad == 0);
}

static uint64_t rng = 0x9E3779B97F4A7C15ull;

static uint64_t next_random(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return rng;
}

TEST(corrupted_blobs_random) {
  int iter, k, bad = 0;
  for (iter = 0; iter < 5000; iter++) {
    msg_buf *b = &blobs[next_random() % (NSAMPLES + 1)];
    unsigned char *copy = malloc(b->len);
    int flips = 1 + (int)(next_random() % 3);
    memcpy(copy, b->p, b->len);
    for (k = 0; k < flips; k++) copy[next_random() % b->len] = (unsigned char)next_random();
    if (!survives(copy, b->len)) bad++;
    free(copy);
  }
  CHECK(bad == 0);
}

/* A blob of two values: a table (object 0) and a function with one upvalue of kind `uv`. */
static void func_blob(msg_buf *b, const unsigned char *code, size_t len, unsigned nups,
                      const unsigned char *uv, size_t uvlen) {
  b->len = 0;
  msgb_count(b, 2);
  msgb_table(b, 0, 0);
  msg_buf_add(b, "\x09", 1);
  {
    unsigned char v[10];
    size_t n = 0, x = len;
    do v[n++] = (unsigned char)((x & 0x7f) | (x > 0x7f ? 0x80 : 0)); while ((x >>= 7) != 0);
    msg_buf_add(b, v, n);
  }
  msg_buf_add(b, code, len);
  msg_buf_add(b, &(unsigned char){(unsigned char)nups}, 1);
  msg_buf_add(b, uv, uvlen);
}

TEST(malformed_blobs) {
  static const struct { const char *bytes; size_t len; } cases[] = {
    {"\x01\x0D", 2},                                /* unknown tag */
    {"\x01\x08\x01\x00\x00\x00\x00\x00\x00\x00", 10},  /* term without TERM_BIT */
    {"\x01\x06\x00\x00\x00\x00\x01\x00\x00\x00\x00\x01", 12},  /* nil key */
    {"\x01\x06\x00\x00\x00\x00\x01\x00\x00\x00\x04\x00\x00\x00\x00\x00\x00\xf8\x7f\x01", 20},
    {"\x01\x07\x00", 3},                            /* OBJREF with no objects */
    {"\x02\x06\x00\x00\x00\x00\x00\x00\x00\x00\x07\x01", 12},  /* OBJREF past the end */
    {"\x01\x01\x01", 3},                            /* trailing garbage */
    {"\x02\x01", 2},                                /* fewer values than counted */
    {"\x01\x0C\x03\x02\x01\x01", 6},                /* embedded count 2 */
    {"\x01\x0C\x03\x01\x01\x01", 6},                /* embedded trailing garbage */
    {"\x01\x0C\x00", 3},                            /* empty embedded blob */
    {"\x01\x05\x05" "abc", 6},                      /* string longer than the blob */
    {"\x01\x06\xff\xff\xff\xff\x00\x00\x00\x00", 10},  /* narr beyond the bytes left */
    {"\x01\x03\xff\xff\xff\xff\xff\xff\xff\xff\xff\x7f", 12},  /* varint past 64 bits */
    {"\x01\x09\x08return 1\x00", 12},               /* text chunk, not bytecode */
  };
  msg_buf b;
  size_t i;
  msg_buf_init(&b);
  for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    b.len = 0;
    msg_buf_add(&b, cases[i].bytes, cases[i].len);
    if (decode_rc(&b) != MB_EBADMSG) printf("  case %zu decoded\n", i);
    CHECK(decode_rc(&b) == MB_EBADMSG);
  }
  msg_buf_free(&b);
}

/* Bytecode taken from a real blob, then wrapped with broken upvalue descriptions. */
TEST(malformed_functions) {
  const unsigned char *p;
  unsigned char *code;
  size_t len;
  msg_buf b;
  CHECK(run(S, "local a = 1 return function() return a end") == 1);
  CHECK(encode_top(1, "msg") == 0);
  p = last.p + 2;
  len = (size_t)read_varint(&p);
  code = malloc(len);
  memcpy(code, p, len);
  msg_buf_init(&b);
  func_blob(&b, code, len, 1, (const unsigned char *)"\x00\x03\x05", 3);
  CHECK(decode_rc(&b) == 2);                                   /* the control case */
  func_blob(&b, code, len, 2, (const unsigned char *)"\x00\x03\x05\x01", 4);
  CHECK(decode_rc(&b) == MB_EBADMSG);                          /* nups mismatch */
  func_blob(&b, code, len, 1, (const unsigned char *)"\x03", 1);
  CHECK(decode_rc(&b) == MB_EBADMSG);                          /* bad upvalue kind */
  func_blob(&b, code, len, 1, (const unsigned char *)"\x02\x00\x01", 3);
  CHECK(decode_rc(&b) == MB_EBADMSG);                          /* joins a table */
  func_blob(&b, code, len, 1, (const unsigned char *)"\x02\x01\x02", 3);
  CHECK(decode_rc(&b) == MB_EBADMSG);                          /* joins a missing upvalue */
  func_blob(&b, code, len, 1, (const unsigned char *)"\x02\x01\x01", 3);
  CHECK(decode_rc(&b) == 2);                                   /* joins itself: legal */
  code[len / 2] ^= 0xFF;
  func_blob(&b, code, len - 7, 1, (const unsigned char *)"\x01", 1);
  CHECK(decode_rc(&b) == MB_EBADMSG);                          /* truncated bytecode */
  msg_buf_free(&b);
  free(code);
}

TEST(unresolvable_names_raise) {
  msg_buf b;
  int ok;
  msg_buf_init(&b);
  msgb_count(&b, 1);
  msg_buf_add(&b, "\x0B\x06string\x07nothere", 16);
  CHECK(pdecode(b.p, b.len, &ok) == MB_ELUA);
  b.len = 0;
  msgb_count(&b, 1);
  msg_buf_add(&b, "\x0A\x0bno.such.mod", 13);
  CHECK(pdecode(b.p, b.len, &ok) == MB_ELUA);
  msg_buf_free(&b);
}

/* }================================================================== */

/* {==================================================================
** Builder, msg_is_string, msg_format
** =================================================================== */

TEST(builder_exit_message) {
  int rc, top = lua_gettop(R);
  set_global_term(R, "ep", pid_make(5, 3));
  rc = msg_decode(R, blobs[NSAMPLES].p, blobs[NSAMPLES].len);
  CHECK(rc == 1);
  if (rc == 1) set_results(1);
  CHECK(lua_gettop(R) == top);
  CHECK(truthy(R, "return #v == 3 and v[1] == 'EXIT' and v[2] == ep and v[3][1] == 'shutdown' "
                  "and v[3][2] == 42 and math.type(v[3][2]) == 'integer' and v[3].why == 0.5"));
  CHECK_STR(format(&blobs[NSAMPLES], &rc), "{\"EXIT\", <0.5.3>, {\"shutdown\", 42, why = 0.5}}");
  CHECK(rc == 0);
}

TEST(is_string) {
  msg_buf b;
  msg_buf_init(&b);
  msgb_count(&b, 1);
  msgb_str(&b, "hello", 5);
  CHECK(msg_is_string(b.p, b.len, "hello") == 1);
  CHECK(msg_is_string(b.p, b.len, "hell") == 0);
  CHECK(msg_is_string(b.p, b.len, "hello!") == 0);
  CHECK(msg_is_string(b.p, b.len - 1, "hell") == 0);
  b.len = 0;
  msgb_count(&b, 2);
  msgb_str(&b, "hello", 5);
  msgb_nil(&b);
  CHECK(msg_is_string(b.p, b.len, "hello") == 0);
  b.len = 0;
  msgb_count(&b, 1);
  msgb_str(&b, "a\0b", 3);
  CHECK(msg_is_string(b.p, b.len, "a") == 0);
  b.len = 0;
  msgb_count(&b, 1);
  msgb_table(&b, 1, 0);
  msgb_str(&b, "hello", 5);
  CHECK(msg_is_string(b.p, b.len, "hello") == 0);
  CHECK(msg_is_string(NULL, 0, "") == 0);
  msg_buf_free(&b);
}

TEST(format_values) {
  set_global_term(S, "p", pid_make(5, 3));
  CHECK_STR(format_of("return {'shutdown', 42}"), "{\"shutdown\", 42}");
  CHECK_STR(format_of("return 'a\\nb'"), "\"a\\nb\"");
  CHECK_STR(format_of("return 'q\"\\\\\\1'"), "\"q\\\"\\\\\\001\"");
  CHECK_STR(format_of("return 1.0, -0.0, 0.5, 1/0, -1/0, 0/0, 1e100, -3"),
            "1.0, -0.0, 0.5, inf, -inf, nan, 1e+100, -3");
  CHECK_STR(format_of("return 1, 'x', nil, true, false"), "1, \"x\", nil, true, false");
  CHECK_STR(format_of("local t = {} t.self = t return t"), "{self = <cycle>}");
  CHECK_STR(format_of("local s = {} return {s, s}"), "{{}, {...}}");
  CHECK_STR(format_of("return p"), "<0.5.3>");
  CHECK_STR(format_of("return {1, 2, key = 'v'}"), "{1, 2, key = \"v\"}");
  CHECK_STR(format_of("return {['x y'] = 1}, {[true] = 2}, {['end'] = 3}, {[{}] = 4}"),
            "{[\"x y\"] = 1}, {[true] = 2}, {[\"end\"] = 3}, {[{}] = 4}");
  CHECK_STR(format_of("return {1, nil, 3}"), "{1, nil, 3}");
  CHECK_STR(format_of("return string.format, print"),
            "<function string.format>, <function _G.print>");
  CHECK_STR(format_of("local s = string local f = function() return s, {} end return f, f"),
            "<function>, <function>");
}

/* A socket handle (net.h) as the I/O thread builds it: {"tcp", sock, data}. */
TEST(format_socket) {
  msg_buf b, out;
  msg_buf_init(&b);
  msg_buf_init(&out);
  msgb_count(&b, 1);
  msgb_table(&b, 3, 0);
  msgb_str(&b, "tcp", 3);
  msgb_socket(&b, 7);
  msgb_str(&b, "data", 4);
  CHECK(msg_format(b.p, b.len, &out) == 0);
  CHECK(out.len == strlen("{\"tcp\", #Port<0.7>, \"data\"}") &&
        memcmp(out.p, "{\"tcp\", #Port<0.7>, \"data\"}", out.len) == 0);
  b.len -= 6;   /* cut inside the socket id */
  CHECK(msg_format(b.p, b.len, &out) == MB_EBADMSG);
  msg_buf_free(&out);
  msg_buf_free(&b);
}

TEST(format_named_and_cut) {
  msg_buf b, out;
  int rc;
  msg_buf_init(&b);
  msgb_count(&b, 2);
  msg_buf_add(&b, "\x0A\x06string\x07\x00", 10);
  CHECK_STR(format(&b, &rc), "<module string>, <module string>");
  CHECK(rc == 0);
  CHECK(run(S, "return string.rep('x', 10000)") == 1);
  CHECK(encode_top(1, "msg") == 0);
  msg_buf_init(&out);
  msg_buf_add(&out, "msg: ", 5);
  CHECK(msg_format(last.p, last.len, &out) == 0);
  CHECK(out.len > 3900 && out.len < 4100);
  CHECK(memcmp(out.p, "msg: \"xxx", 9) == 0 && memcmp(out.p + out.len - 3, "...", 3) == 0);
  msg_buf_free(&out);
  msg_buf_free(&b);
}

TEST(format_malformed) {
  msg_buf b;
  int rc;
  msg_buf_init(&b);
  CHECK_STR(format(&b, &rc), "<bad message>");
  CHECK(rc == MB_EBADMSG);
  msg_buf_add(&b, "\x02\x03\x02\xff", 4);
  CHECK_STR(format(&b, &rc), "1, <bad message>");
  CHECK(rc == MB_EBADMSG);
  b.len = 0;
  msg_buf_add(&b, "\x01\x06\x02\x00\x00\x00\x00\x00\x00\x00\x01\x0D", 12);
  CHECK_STR(format(&b, &rc), "{false, <bad message>");
  CHECK(rc == MB_EBADMSG);
  msg_buf_free(&b);
}

/* }================================================================== */

/* {==================================================================
** Reuse
** =================================================================== */

/* Many encodes of varied values through one encoder; ASan's leak check covers the scratch. */
TEST(encoder_reuse) {
  int i, rc, refused = 0, failed = 0, base = lua_gettop(S);
  CHECK(run(S, "function gen(i) local k = i % 6 "
               "if k == 0 then local t = {} for j = 1, i % 50 do t[j] = j; t['k' .. j] = {j} end "
               "return t "
               "elseif k == 1 then return string.rep('ab', i % 300), i, i + 0.5 "
               "elseif k == 2 then local n = i return function() n = n + 1 return n end "
               "elseif k == 3 then local t = {} t.self = t t.f = function() return t end return t "
               "elseif k == 4 and i % 97 == 4 then return {a = {b = io.stdout}} "
               "else return nil, false, {[i] = i} end end") == 0);
  for (i = 0; i < 10000; i++) {
    int n;
    lua_getglobal(S, "gen");
    lua_pushinteger(S, i);
    lua_call(S, 1, LUA_MULTRET);
    n = lua_gettop(S) - base;
    rc = encode_top(n, "msg");
    if (rc == MB_EUNCOPYABLE) refused++;
    else if (rc != 0) failed++;
    else if (i % 100 == 0 && decode_rc(&last) != n) failed++;
  }
  CHECK(failed == 0);
  CHECK(refused == 18);
  CHECK(lua_gettop(S) == base);
}

/* }================================================================== */

int main(void) {
  int i;
  S = new_state();
  R = new_state();
  enc = msg_enc_new();
  msg_buf_init(&last);
  RUN(scalars);
  RUN(strings);
  RUN(tables);
  RUN(terms);
  RUN(cycles_and_sharing);
  RUN(closures);
  RUN(globals_are_the_receivers);
  RUN(c_functions_travel_by_name);
  RUN(modules_bind_in_the_receiver);
  RUN(refusal_messages);
  RUN(refusal_paths);
  RUN(encoder_works_after_refusal);
  RUN(depth_limit);
  RUN(decoder_depth_limit);
  RUN(encoder_survives_lua_error);
  make_blobs();
  RUN(truncated_blobs);
  RUN(corrupted_blobs_every_byte);
  RUN(corrupted_blobs_random);
  RUN(malformed_blobs);
  RUN(malformed_functions);
  RUN(unresolvable_names_raise);
  RUN(builder_exit_message);
  RUN(is_string);
  RUN(format_values);
  RUN(format_socket);
  RUN(format_named_and_cut);
  RUN(format_malformed);
  RUN(encoder_reuse);
  for (i = 0; i <= NSAMPLES; i++) msg_buf_free(&blobs[i]);
  msg_buf_free(&last);
  msg_enc_free(enc);
  lua_close(S);
  lua_close(R);
  return test_summary();
}
