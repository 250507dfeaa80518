/*
** alloc.c — the allocator behind every process's Lua heap (see alloc.h).
**
** Lua passes the size of every block it frees or resizes, so small blocks need no header:
** sizes up to 512 bytes come in classes 16 bytes apart, and up to ALLOC_SMALL (a fresh
** state's stack and string table are among those) 128 bytes apart, carved from 2 MiB
** chunks (asked to be huge pages, which halves the page faults a burst of spawns takes).
** A free block holds the next pointer of its list.
**
** Each thread keeps free lists per class (a thread-local cache, no lock): a working list
** of up to BATCH blocks and one whole batch in reserve. Past that, whole batches go to the
** global pool; an empty cache takes a batch from the pool, or carves a fresh one from the
** current chunk. Blocks move freely between threads: a process may die on another thread
** than the one that made it; a thread that ends gives its blocks back.
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
#include <stddef.h>
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
  block *batches[NCLASS];            /* stacks of lists of exactly BATCH blocks */
  block *loose[NCLASS];              /* blocks of threads that ended (any number) */
  char *cur, *end;                   /* the chunk being carved */
  chunk *chunks;
  int runtimes;                      /* live runtimes (alloc_retain/alloc_release) */
  _Atomic unsigned gen;              /* goes up when the chunks are released */
} pool = {.lock = PTHREAD_MUTEX_INITIALIZER};

#ifndef USE_MALLOC
/* Per class: `hot` (n blocks, at most BATCH) serves and takes blocks; `full` is a whole
** batch kept in reserve. Counts are exact, so no path walks a list except a thread's end. */
typedef struct cache {
  block *hot[NCLASS], *full[NCLASS];
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

/* Carve a batch of class c from the current chunk (a new one when it runs out). pool.lock
** held. Fewer than BATCH blocks (or NULL) only when the system has no memory. */
static block *carve(size_t c, unsigned *n) {
  size_t size = size_of(c);
  block *head = NULL, **tail = &head;
  for (*n = 0; *n < BATCH; ++*n) {
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

/* A list for an empty cache: a batch from the pool, else loose blocks, else fresh ones.
** pool.lock held. */
static block *refill(size_t c, unsigned *n) {
  block *b = pool.batches[c];
  if (b != NULL) {
    pool.batches[c] = b->batch;
    *n = BATCH;
    return b;
  }
  if ((b = pool.loose[c]) != NULL) {
    block *last = b;
    for (*n = 1; *n < BATCH && last->next; ++*n) last = last->next;
    pool.loose[c] = last->next;
    last->next = NULL;
    return b;
  }
  return carve(c, n);
}

static void put_loose(size_t c, block *list) {
  while (list) {
    block *next = list->next;
    list->next = pool.loose[c];
    pool.loose[c] = list;
    list = next;
  }
}

/* Give back what this thread caches (at thread exit). */
static void flush(cache *t) {
  pthread_mutex_lock(&pool.lock);
  if (t->gen == atomic_load_explicit(&pool.gen, memory_order_relaxed))
    for (size_t c = 0; c < NCLASS; c++) {
      put_loose(c, t->hot[c]);
      put_loose(c, t->full[c]);
    }
  pthread_mutex_unlock(&pool.lock);
  memset(t, 0, offsetof(cache, gen));
}

static void at_thread_exit(void *ud) { flush(ud); }

static void make_key(void) { pthread_key_create(&flush_key, at_thread_exit); }

/* This thread's cache, emptied if the chunks it pointed into were released. */
static cache *my_cache(void) {
  cache *t = &tc;
  unsigned g = atomic_load_explicit(&pool.gen, memory_order_acquire);
  if (t->gen != g) {
    memset(t, 0, offsetof(cache, gen));
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
  block *b = t->hot[c];
  if (b == NULL) {
    if ((b = t->full[c]) != NULL) {
      t->full[c] = NULL;
      t->n[c] = BATCH;
    } else {
      pthread_mutex_lock(&pool.lock);
      b = refill(c, &t->n[c]);
      pthread_mutex_unlock(&pool.lock);
      if (b == NULL) return NULL;
    }
  }
  t->hot[c] = b->next;
  t->n[c]--;
  return b;
}

static void small_free(void *p, size_t c) {
  cache *t = my_cache();
  block *b = p;
  if (t->n[c] == BATCH) {              /* hot is a whole batch: keep it in reserve */
    block *spill = t->full[c];
    t->full[c] = t->hot[c];
    t->hot[c] = NULL;
    t->n[c] = 0;
    if (spill) {                       /* and the reserve goes to the pool */
      pthread_mutex_lock(&pool.lock);
      spill->batch = pool.batches[c];
      pool.batches[c] = spill;
      pthread_mutex_unlock(&pool.lock);
    }
  }
  b->next = t->hot[c];
  t->hot[c] = b;
  t->n[c]++;
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
  memset(pool.loose, 0, sizeof pool.loose);
    atomic_fetch_add_explicit(&pool.gen, 1, memory_order_release);
  }
  pthread_mutex_unlock(&pool.lock);
  while (list) {
    chunk *next = list->next;
    munmap(list, CHUNK);
    list = next;
  }
}
