/*
** alloc.c — the allocator behind every process's Lua heap (see alloc.h).
**
** Lua passes the size of every block it frees or resizes, so small blocks need no header:
** sizes up to 512 bytes come in classes 16 bytes apart, and up to ALLOC_SMALL (a fresh
** state's stack and string table are among those) 128 bytes apart, carved from 2 MiB
** chunks (asked to be huge pages, which halves the page faults a burst of spawns takes).
** A free block holds the next pointer of its list.
**
** Each thread keeps a free list per class (a thread-local cache, no lock). A list that
** grows past 2 * BATCH gives BATCH blocks back to the global pool; an empty one takes a
** batch from the pool, or carves a fresh batch from the current chunk. Blocks move freely
** between threads: a process may die on another thread than the one that made it.
**
** Lock discipline: `pool.lock` guards the pool's batch stacks, the current chunk and the
** chunk list; it is a leaf (nothing else is taken under it).
**
** Chunks go back to the system only when the last runtime is freed (alloc_release), so
** valgrind sees nothing left; a generation number tells threads whose caches still point
** into released chunks to drop them. Under AddressSanitizer every block comes from malloc,
** so ASan still checks each one.
*/
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "alloc.h"

#if defined(__SANITIZE_ADDRESS__)
#define USE_MALLOC 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define USE_MALLOC 1
#endif
#endif

#ifdef USE_MALLOC
const int alloc_passthrough = 1;
#else
const int alloc_passthrough = 0;
#endif

enum {
  FINE = 512,                        /* up to here classes are GRAIN apart */
  GRAIN = 16,
  COARSE = 128,                      /* then COARSE apart up to ALLOC_SMALL */
  ALLOC_SMALL = 2048,                /* bigger blocks come from malloc */
  NFINE = FINE / GRAIN,
  NCLASS = NFINE + (ALLOC_SMALL - FINE) / COARSE,
  BATCH = 64,                        /* blocks moved between a cache and the pool at once */
  CHUNK = 2u << 20,
};

typedef struct block {
  struct block *next;                /* next in its list */
  struct block *batch;               /* in the pool: the next batch (first block only) */
} block;

typedef struct chunk {
  struct chunk *next;
} chunk;

static struct {
  pthread_mutex_t lock;
  block *batches[NCLASS];            /* stacks of BATCH-block lists */
  char *cur, *end;                   /* the chunk being carved */
  chunk *chunks;
  int runtimes;                      /* live runtimes (alloc_retain/alloc_release) */
  _Atomic unsigned gen;              /* goes up when the chunks are released */
} pool = {.lock = PTHREAD_MUTEX_INITIALIZER};

#ifndef USE_MALLOC
typedef struct cache {
  block *head[NCLASS];
  unsigned n[NCLASS];
  unsigned gen;
  int live;                          /* registered for the flush at thread exit */
} cache;

static _Thread_local cache tc;
static pthread_key_t flush_key;
static pthread_once_t key_once = PTHREAD_ONCE_INIT;

static size_t class_of(size_t size) {
  return size <= FINE ? (size - 1) / GRAIN : NFINE + (size - FINE - 1) / COARSE;
}

static size_t size_of(size_t c) {
  return c < NFINE ? (c + 1) * GRAIN : FINE + (c - NFINE + 1) * COARSE;
}

/* Carve n blocks of class c from the current chunk (a new one when it runs out), as a
** list. pool.lock held. NULL when the system has no memory. */
static block *carve(size_t c, int n) {
  size_t size = size_of(c);
  block *head = NULL, **tail = &head;
  for (int i = 0; i < n; i++) {
    if (pool.cur == NULL || (size_t)(pool.end - pool.cur) < size) {
      char *m = mmap(NULL, CHUNK, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      if (m == MAP_FAILED) break;
#ifdef MADV_HUGEPAGE
      madvise(m, CHUNK, MADV_HUGEPAGE);
#endif
      chunk *ch = (chunk *)m;        /* the chunk's first grain links it */
      ch->next = pool.chunks;
      pool.chunks = ch;
      pool.cur = m + GRAIN;
      pool.end = m + CHUNK;
    }
    block *b = (block *)pool.cur;
    pool.cur += size;
    *tail = b;
    tail = &b->next;
  }
  *tail = NULL;
  return head;
}

/* Give back what this thread caches (at thread exit, and before a cache is dropped). */
static void flush(cache *t) {
  if (t->gen != atomic_load_explicit(&pool.gen, memory_order_acquire)) return;
  pthread_mutex_lock(&pool.lock);
  if (t->gen == atomic_load_explicit(&pool.gen, memory_order_relaxed))
    for (size_t c = 0; c < NCLASS; c++) {
      if (t->head[c] == NULL) continue;
      t->head[c]->batch = pool.batches[c];   /* a short batch is fine */
      pool.batches[c] = t->head[c];
    }
  pthread_mutex_unlock(&pool.lock);
  memset(t->head, 0, sizeof t->head);
  memset(t->n, 0, sizeof t->n);
}

static void at_thread_exit(void *ud) { flush(ud); }

static void make_key(void) { pthread_key_create(&flush_key, at_thread_exit); }

/* This thread's cache, emptied if the chunks it pointed into were released. */
static cache *my_cache(void) {
  cache *t = &tc;
  unsigned g = atomic_load_explicit(&pool.gen, memory_order_acquire);
  if (t->gen != g) {
    memset(t->head, 0, sizeof t->head);
    memset(t->n, 0, sizeof t->n);
    t->gen = g;
  }
  if (!t->live) {
    pthread_once(&key_once, make_key);
    pthread_setspecific(flush_key, t);
    t->live = 1;
  }
  return t;
}

static void *small_alloc(size_t c) {
  cache *t = my_cache();
  block *b = t->head[c];
  if (b == NULL) {
    unsigned n = 0;
    pthread_mutex_lock(&pool.lock);
    if ((b = pool.batches[c]) != NULL) pool.batches[c] = b->batch;
    else b = carve(c, BATCH);
    pthread_mutex_unlock(&pool.lock);
    if (b == NULL) return NULL;
    for (block *x = b; x; x = x->next) n++;
    t->n[c] = n;
  }
  t->head[c] = b->next;
  t->n[c]--;
  return b;
}

static void small_free(void *p, size_t c) {
  cache *t = my_cache();
  block *b = p;
  b->next = t->head[c];
  t->head[c] = b;
  if (++t->n[c] < 2 * BATCH) return;
  block *last = b;                     /* hand the first BATCH blocks to the pool */
  for (int i = 1; i < BATCH; i++) last = last->next;
  t->head[c] = last->next;
  t->n[c] -= BATCH;
  last->next = NULL;
  pthread_mutex_lock(&pool.lock);
  b->batch = pool.batches[c];
  pool.batches[c] = b;
  pthread_mutex_unlock(&pool.lock);
}

#endif

void *alloc_lua(void *ptr, size_t osize, size_t nsize) {
#ifdef USE_MALLOC
  (void)osize;
  if (nsize == 0) {
    free(ptr);
    return NULL;
  }
  return realloc(ptr, nsize);
#else
  size_t old = ptr ? osize : 0;
  void *q;
  if (nsize == 0) {
    if (ptr == NULL) return NULL;
    if (old <= ALLOC_SMALL) small_free(ptr, class_of(old));
    else free(ptr);
    return NULL;
  }
  if (nsize > ALLOC_SMALL && (ptr == NULL || old > ALLOC_SMALL)) return realloc(ptr, nsize);
  if (ptr && old <= ALLOC_SMALL && nsize <= ALLOC_SMALL && class_of(old) == class_of(nsize))
    return ptr;
  q = nsize <= ALLOC_SMALL ? small_alloc(class_of(nsize)) : malloc(nsize);
  if (q == NULL || ptr == NULL) return q;
  memcpy(q, ptr, old < nsize ? old : nsize);
  if (old <= ALLOC_SMALL) small_free(ptr, class_of(old));
  else free(ptr);
  return q;
#endif
}

void alloc_retain(void) {
  pthread_mutex_lock(&pool.lock);
  pool.runtimes++;
  pthread_mutex_unlock(&pool.lock);
}

void alloc_release(void) {
  chunk *list = NULL;
  pthread_mutex_lock(&pool.lock);
  if (--pool.runtimes == 0) {
    list = pool.chunks;
    pool.chunks = NULL;
    pool.cur = pool.end = NULL;
    memset(pool.batches, 0, sizeof pool.batches);
    atomic_fetch_add_explicit(&pool.gen, 1, memory_order_release);
  }
  pthread_mutex_unlock(&pool.lock);
  while (list) {
    chunk *next = list->next;
    munmap(list, CHUNK);
    list = next;
  }
}
