/* timer.c — receive timeouts, sleeps and send_after: a min-heap served by one thread. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "proc.h"
#include "reg.h"
#include "rt.h"
#include "timer.h"

enum { T_WAKE, T_SEND };

typedef struct tmr {
  uint64_t id, deadline;     /* deadline: ns of the monotonic clock */
  size_t hidx;               /* position in the heap */
  int kind;
  uint64_t pid;              /* T_WAKE: whom to wake; T_SEND: destination pid */
  uint32_t gen;              /* T_WAKE: the wait it belongs to */
  char *name;                /* T_SEND: destination name, or NULL */
  mbox_item *msg;            /* T_SEND */
  struct tmr *next;          /* list of fired timers */
} tmr;

/* Open-addressing map id -> tmr, linear probing, deletion by shifting back. */
typedef struct tmap {
  tmr **slots;
  size_t cap, n;
} tmap;

struct timers {
  pthread_mutex_t lock;
  pthread_cond_t cond;
  pthread_t thread;
  int started, stop;
  tmr **heap;
  size_t n, cap;
  tmap map;
};

uint64_t timer_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---------------------------------------------------------------- id map */

static size_t slot_of(const tmap *m, uint64_t id) {
  return (size_t)((id * 0x9E3779B97F4A7C15ull) >> 20) & (m->cap - 1);
}

static int map_put(tmap *m, tmr *t);

static int map_grow(tmap *m) {
  tmap bigger = {calloc(m->cap ? m->cap * 2 : 64, sizeof(tmr *)), m->cap ? m->cap * 2 : 64, 0};
  if (bigger.slots == NULL) return MB_ENOMEM;
  for (size_t i = 0; i < m->cap; i++)
    if (m->slots[i]) map_put(&bigger, m->slots[i]);
  free(m->slots);
  *m = bigger;
  return 0;
}

static int map_put(tmap *m, tmr *t) {
  size_t i;
  if ((m->n + 1) * 2 > m->cap && map_grow(m) != 0) return MB_ENOMEM;
  for (i = slot_of(m, t->id); m->slots[i]; i = (i + 1) & (m->cap - 1)) {}
  m->slots[i] = t;
  m->n++;
  return 0;
}

static size_t map_find(const tmap *m, uint64_t id) {
  if (m->cap == 0) return (size_t)-1;
  for (size_t i = slot_of(m, id); m->slots[i]; i = (i + 1) & (m->cap - 1))
    if (m->slots[i]->id == id) return i;
  return (size_t)-1;
}

/* Remove slot i and move later members of its probe run back, so lookups stay correct. */
static void map_del(tmap *m, size_t i) {
  size_t j = i;
  m->slots[i] = NULL;
  m->n--;
  for (;;) {
    j = (j + 1) & (m->cap - 1);
    if (m->slots[j] == NULL) return;
    size_t home = slot_of(m, m->slots[j]->id);
    /* slot j may move to i if its home is not in the cyclic range (i, j] */
    if ((j > i && (home <= i || home > j)) || (j < i && home <= i && home > j)) {
      m->slots[i] = m->slots[j];
      m->slots[j] = NULL;
      i = j;
    }
  }
}

/* ---------------------------------------------------------------- heap */

static void heap_swap(timers *tm, size_t a, size_t b) {
  tmr *t = tm->heap[a];
  tm->heap[a] = tm->heap[b];
  tm->heap[b] = t;
  tm->heap[a]->hidx = a;
  tm->heap[b]->hidx = b;
}

static void heap_up(timers *tm, size_t i) {
  while (i > 0 && tm->heap[(i - 1) / 2]->deadline > tm->heap[i]->deadline) {
    heap_swap(tm, i, (i - 1) / 2);
    i = (i - 1) / 2;
  }
}

static void heap_down(timers *tm, size_t i) {
  for (;;) {
    size_t l = 2 * i + 1, r = l + 1, m = i;
    if (l < tm->n && tm->heap[l]->deadline < tm->heap[m]->deadline) m = l;
    if (r < tm->n && tm->heap[r]->deadline < tm->heap[m]->deadline) m = r;
    if (m == i) return;
    heap_swap(tm, i, m);
    i = m;
  }
}

static int heap_push(timers *tm, tmr *t) {
  if (tm->n == tm->cap) {
    size_t cap = tm->cap ? tm->cap * 2 : 64;
    tmr **h = realloc(tm->heap, cap * sizeof *h);
    if (h == NULL) return MB_ENOMEM;
    tm->heap = h;
    tm->cap = cap;
  }
  t->hidx = tm->n;
  tm->heap[tm->n++] = t;
  heap_up(tm, t->hidx);
  return 0;
}

static void heap_remove(timers *tm, tmr *t) {
  size_t i = t->hidx;
  tm->n--;
  if (i == tm->n) return;
  heap_swap(tm, i, tm->n);
  heap_down(tm, i);
  heap_up(tm, i);
}

/* ---------------------------------------------------------------- firing */

static void tmr_free(tmr *t) {
  mbox_item_free(t->msg);
  free(t->name);
  free(t);
}

static void fire(mb_runtime *rt, tmr *t) {
  if (t->kind == T_WAKE) {
    proc *p = proc_lookup(rt, t->pid);
    if (p == NULL) return;
    if (atomic_load(&p->wait_gen) == t->gen) {
      atomic_store(&p->tmo_fired, t->gen);
      proc_wake(p, 1);
    }
    proc_release(p);
    return;
  }
  uint64_t dest = t->name ? reg_whereis(rt, t->name) : t->pid;
  if (dest != 0) {
    proc_deliver(rt, dest, t->msg);
    t->msg = NULL;
  }
}

/* Pop every due timer (lock held) into a list, oldest deadline first. */
static tmr *take_due(timers *tm, uint64_t now) {
  tmr *first = NULL, **last = &first;
  while (tm->n > 0 && tm->heap[0]->deadline <= now) {
    tmr *t = tm->heap[0];
    heap_remove(tm, t);
    map_del(&tm->map, map_find(&tm->map, t->id));
    t->next = NULL;
    *last = t;
    last = &t->next;
  }
  return first;
}

static void wait_until(timers *tm, uint64_t deadline) {
  struct timespec ts = {(time_t)(deadline / 1000000000u), (long)(deadline % 1000000000u)};
  pthread_cond_timedwait(&tm->cond, &tm->lock, &ts);
}

static void *timer_main(void *arg) {
  mb_runtime *rt = arg;
  timers *tm = rt->tm;
  pthread_mutex_lock(&tm->lock);
  while (!tm->stop) {
    tmr *due = take_due(tm, timer_now());
    if (due) {
      pthread_mutex_unlock(&tm->lock);
      while (due) {
        tmr *next = due->next;
        fire(rt, due);
        tmr_free(due);
        due = next;
      }
      pthread_mutex_lock(&tm->lock);
    } else if (tm->n == 0) {
      pthread_cond_wait(&tm->cond, &tm->lock);
    } else {
      wait_until(tm, tm->heap[0]->deadline);
    }
  }
  pthread_mutex_unlock(&tm->lock);
  return NULL;
}

/* ---------------------------------------------------------------- API */

int timer_start(mb_runtime *rt) {
  timers *tm = calloc(1, sizeof *tm);
  pthread_condattr_t ca;
  if (tm == NULL) return MB_ENOMEM;
  pthread_mutex_init(&tm->lock, NULL);
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&tm->cond, &ca);
  pthread_condattr_destroy(&ca);
  rt->tm = tm;
  if (pthread_create(&tm->thread, NULL, timer_main, rt) != 0) return MB_ETHREAD;
  tm->started = 1;
  return 0;
}

void timer_stop(mb_runtime *rt) {
  timers *tm = rt->tm;
  if (tm == NULL) return;
  pthread_mutex_lock(&tm->lock);
  tm->stop = 1;
  pthread_cond_signal(&tm->cond);
  pthread_mutex_unlock(&tm->lock);
  if (tm->started) pthread_join(tm->thread, NULL);
  for (size_t i = 0; i < tm->n; i++) tmr_free(tm->heap[i]);
  free(tm->heap);
  free(tm->map.slots);
  pthread_cond_destroy(&tm->cond);
  pthread_mutex_destroy(&tm->lock);
  free(tm);
  rt->tm = NULL;
}

static int add(timers *tm, tmr *t) {
  int st;
  pthread_mutex_lock(&tm->lock);
  st = map_put(&tm->map, t);
  if (st == 0 && (st = heap_push(tm, t)) != 0) map_del(&tm->map, map_find(&tm->map, t->id));
  if (st == 0 && t->hidx == 0) pthread_cond_signal(&tm->cond);
  pthread_mutex_unlock(&tm->lock);
  return st;
}

uint64_t timer_wake(mb_runtime *rt, uint64_t pid, uint32_t gen, uint64_t deadline) {
  tmr *t = calloc(1, sizeof *t);
  if (t == NULL) return 0;
  t->id = rt_make_ref(rt);
  t->deadline = deadline;
  t->kind = T_WAKE;
  t->pid = pid;
  t->gen = gen;
  if (add(rt->tm, t) != 0) {
    free(t);
    return 0;
  }
  return t->id;
}

int timer_send(mb_runtime *rt, uint64_t ref, uint64_t dest, char *name, mbox_item *msg,
               double ms) {
  tmr *t = calloc(1, sizeof *t);
  if (t == NULL) {
    free(name);
    mbox_item_free(msg);
    return MB_ENOMEM;
  }
  t->id = ref;
  t->deadline = timer_now() + (uint64_t)(ms * 1e6);
  t->kind = T_SEND;
  t->pid = dest;
  t->name = name;
  t->msg = msg;
  if (add(rt->tm, t) != 0) {
    tmr_free(t);
    return MB_ENOMEM;
  }
  return 0;
}

static double left_ms(const tmr *t) {
  uint64_t now = timer_now();
  return t->deadline > now ? (double)(t->deadline - now) / 1e6 : 0.0;
}

int timer_cancel(mb_runtime *rt, uint64_t id, double *left) {
  timers *tm = rt->tm;
  tmr *t = NULL;
  pthread_mutex_lock(&tm->lock);
  size_t i = map_find(&tm->map, id);
  if (i != (size_t)-1) {
    t = tm->map.slots[i];
    map_del(&tm->map, i);
    heap_remove(tm, t);
    if (left) *left = left_ms(t);
  }
  pthread_mutex_unlock(&tm->lock);
  if (t) tmr_free(t);
  return t != NULL;
}

int timer_read(mb_runtime *rt, uint64_t id, double *left) {
  timers *tm = rt->tm;
  int found = 0;
  pthread_mutex_lock(&tm->lock);
  size_t i = map_find(&tm->map, id);
  if (i != (size_t)-1) {
    *left = left_ms(tm->map.slots[i]);
    found = 1;
  }
  pthread_mutex_unlock(&tm->lock);
  return found;
}
