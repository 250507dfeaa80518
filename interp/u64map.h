/*
** u64map.h — an open-addressing hash map from nonzero 64-bit keys to 64-bit values.
**
** Linear probing; deletion shifts later members of a probe run back, so there are no
** tombstones. Keys must not be 0 (0 marks an empty slot). Not thread-safe: the owner
** guards it (the timer lock, the registry lock).
*/
#ifndef U64MAP_H
#define U64MAP_H

#include <stdint.h>
#include <stdlib.h>

#include "moonbeam.h"

typedef struct u64map {
  uint64_t *keys, *vals;
  size_t cap, n;           /* cap: 0 or a power of two */
} u64map;

static inline size_t u64map_home(const u64map *m, uint64_t k) {
  return (size_t)((k * 0x9E3779B97F4A7C15ull) >> 20) & (m->cap - 1);
}

static inline void u64map_free(u64map *m) {
  free(m->keys);
  free(m->vals);
  m->keys = m->vals = NULL;
  m->cap = m->n = 0;
}

/* The slot holding k, or (size_t)-1. */
static inline size_t u64map_find(const u64map *m, uint64_t k) {
  if (m->cap == 0) return (size_t)-1;
  for (size_t i = u64map_home(m, k); m->keys[i]; i = (i + 1) & (m->cap - 1))
    if (m->keys[i] == k) return i;
  return (size_t)-1;
}

static inline int u64map_put(u64map *m, uint64_t k, uint64_t v);

static inline int u64map_grow(u64map *m) {
  size_t cap = m->cap ? m->cap * 2 : 64;
  u64map bigger = {calloc(cap, sizeof(uint64_t)), calloc(cap, sizeof(uint64_t)), cap, 0};
  if (bigger.keys == NULL || bigger.vals == NULL) {
    u64map_free(&bigger);
    return MB_ENOMEM;
  }
  for (size_t i = 0; i < m->cap; i++)
    if (m->keys[i]) u64map_put(&bigger, m->keys[i], m->vals[i]);
  u64map_free(m);
  *m = bigger;
  return 0;
}

/* Insert or replace. 0, or MB_ENOMEM. */
static inline int u64map_put(u64map *m, uint64_t k, uint64_t v) {
  size_t i;
  if ((m->n + 1) * 2 > m->cap && u64map_grow(m) != 0) return MB_ENOMEM;
  for (i = u64map_home(m, k); m->keys[i] && m->keys[i] != k; i = (i + 1) & (m->cap - 1)) {}
  if (m->keys[i] == 0) m->n++;
  m->keys[i] = k;
  m->vals[i] = v;
  return 0;
}

/* Remove slot i; members of its probe run whose home is not in (i, j] move back to i. */
static inline void u64map_del(u64map *m, size_t i) {
  size_t j = i;
  m->keys[i] = 0;
  m->n--;
  for (;;) {
    j = (j + 1) & (m->cap - 1);
    if (m->keys[j] == 0) return;
    size_t home = u64map_home(m, m->keys[j]);
    if ((j > i && (home <= i || home > j)) || (j < i && home <= i && home > j)) {
      m->keys[i] = m->keys[j];
      m->vals[i] = m->vals[j];
      m->keys[j] = 0;
      i = j;
    }
  }
}

#endif
