/* test_alloc.c — alloc.c: every size class, resizes across classes and to malloc sizes,
** blocks freed on another thread, and a Lua state living on it. */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lualib.h>

#include "alloc.h"
#include "test.h"

/* Fills n bytes at p with a pattern from seed; checks it with same(). */
static void fill(void *p, size_t n, unsigned seed) {
  for (size_t i = 0; i < n; i++) ((unsigned char *)p)[i] = (unsigned char)(seed + i * 7);
}

static int same(const void *p, size_t n, unsigned seed) {
  for (size_t i = 0; i < n; i++)
    if (((const unsigned char *)p)[i] != (unsigned char)(seed + i * 7)) return 0;
  return 1;
}

TEST(every_size_is_usable_and_distinct) {
  enum { MAX = 3000 };
  static void *blocks[MAX + 1];
  for (size_t n = 1; n <= MAX; n++) {
    blocks[n] = alloc_lua(NULL, 0, n);
    CHECK(blocks[n] != NULL);
    if (blocks[n]) fill(blocks[n], n, (unsigned)n);
  }
  for (size_t n = 1; n <= MAX; n++) CHECK(blocks[n] && same(blocks[n], n, (unsigned)n));
  for (size_t n = 1; n <= MAX; n++) CHECK(alloc_lua(blocks[n], n, 0) == NULL);
}

TEST(new_block_osize_is_a_type_tag_not_a_size) {
  void *p = alloc_lua(NULL, 5 /* LUA_TTABLE */, 40);   /* osize ignored when ptr is NULL */
  CHECK(p != NULL);
  fill(p, 40, 1);
  CHECK(same(p, 40, 1));
  alloc_lua(p, 40, 0);
}

TEST(resizes_keep_the_contents) {
  static const size_t steps[] = {8, 16, 17, 100, 512, 513, 640, 2048, 2049, 5000, 100000,
                                 3000, 2000, 600, 500, 33, 1};
  size_t cur = 1;
  void *p = alloc_lua(NULL, 0, cur);
  fill(p, cur, 9);
  for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
    size_t n = steps[i], keep = cur < n ? cur : n;
    void *q = alloc_lua(p, cur, n);
    CHECK(q != NULL);
    if (q == NULL) return;
    CHECK(same(q, keep, 9));
    fill(q, n, 9);
    p = q;
    cur = n;
  }
  alloc_lua(p, cur, 0);
}

TEST(a_resize_within_a_class_stays_in_place) {
  if (alloc_passthrough) return;   /* ASan's malloc moves every block */
  void *p = alloc_lua(NULL, 0, 33);
  CHECK(alloc_lua(p, 33, 48) == p);
  CHECK(alloc_lua(p, 48, 40) == p);
  alloc_lua(p, 40, 0);
}

TEST(a_freed_block_is_used_again) {
  if (alloc_passthrough) return;
  void *p = alloc_lua(NULL, 0, 64);
  alloc_lua(p, 64, 0);
  CHECK(alloc_lua(NULL, 0, 64) == p);
  alloc_lua(p, 64, 0);
}

/* Blocks made here are freed by another thread, many times over its cache's size. */
enum { CROSS = 20000 };
static void *cross[CROSS];

static void *free_all(void *ud) {
  (void)ud;
  for (int i = 0; i < CROSS; i++) alloc_lua(cross[i], 24 + (size_t)(i % 5) * 100, 0);
  return NULL;
}

static void *make_all(void *ud) {
  (void)ud;
  for (int i = 0; i < CROSS; i++) {
    size_t n = 24 + (size_t)(i % 5) * 100;
    cross[i] = alloc_lua(NULL, 0, n);
    fill(cross[i], n, (unsigned)i);
  }
  return NULL;
}

TEST(blocks_freed_on_another_thread_come_back) {
  pthread_t a, b;
  for (int round = 0; round < 3; round++) {
    pthread_create(&a, NULL, make_all, NULL);
    pthread_join(a, NULL);
    int ok = 1;
    for (int i = 0; i < CROSS; i++) ok &= same(cross[i], 24 + (size_t)(i % 5) * 100, (unsigned)i);
    CHECK(ok);
    pthread_create(&b, NULL, free_all, NULL);
    pthread_join(b, NULL);
  }
}

static void *lua_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  (void)ud;
  return alloc_lua(ptr, osize, nsize);
}

TEST(a_lua_state_runs_on_it) {
  lua_State *L = lua_newstate(lua_alloc, NULL);
  CHECK(L != NULL);
  luaL_openlibs(L);
  CHECK(luaL_dostring(L, "local t = {} for i = 1, 10000 do t[i] = ('x'):rep(i % 300) end "
                         "local n = 0 for i = 1, #t do n = n + #t[i] end "
                         "collectgarbage() return n") == LUA_OK);
  CHECK(lua_tointeger(L, -1) == 1485100);
  lua_close(L);
}

int main(void) {
  alloc_retain();
  RUN(every_size_is_usable_and_distinct);
  RUN(new_block_osize_is_a_type_tag_not_a_size);
  RUN(resizes_keep_the_contents);
  RUN(a_resize_within_a_class_stays_in_place);
  RUN(a_freed_block_is_used_again);
  RUN(blocks_freed_on_another_thread_come_back);
  RUN(a_lua_state_runs_on_it);
  alloc_release();
  return test_summary();
}
