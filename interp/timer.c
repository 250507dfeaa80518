/* timer.c — receive timeouts, sleeps and send_after: a min-heap served by one thread. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "proc.h"
#include "reg.h"
#include "rt.h"
#include "timer.h"
#include "u64map.h"

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

struct timers {
  pthread_mutex_t lock;
  pthread_cond_t cond;
  pthread_t thread;
  int started, stop;
  uint64_t sleep_until;        /* the thread sleeps until then (UINT64_MAX: no timer), or 0 */
  tmr **heap;
  size_t n, cap;
  u64map map;                /* timer id -> tmr* */
};

uint64_t timer_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static tmr *map_get(timers *tm, uint64_t id, size_t *slot) {
  *slot = u64map_find(&tm->map, id);
  return *slot == (size_t)-1 ? NULL : (tmr *)(uintptr_t)tm->map.vals[*slot];
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
    u64map_del(&tm->map, u64map_find(&tm->map, t->id));
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
      tm->sleep_until = UINT64_MAX;
      pthread_cond_wait(&tm->cond, &tm->lock);
    } else {
      tm->sleep_until = tm->heap[0]->deadline;
      wait_until(tm, tm->sleep_until);
    }
    tm->sleep_until = 0;
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
  u64map_free(&tm->map);
  pthread_cond_destroy(&tm->cond);
  pthread_mutex_destroy(&tm->lock);
  free(tm);
  rt->tm = NULL;
}

static int add(timers *tm, tmr *t) {
  int st;
  pthread_mutex_lock(&tm->lock);
  st = u64map_put(&tm->map, t->id, (uint64_t)(uintptr_t)t);
  if (st == 0 && (st = heap_push(tm, t)) != 0) u64map_del(&tm->map, u64map_find(&tm->map, t->id));
  /* Wake the thread only for a deadline before the one it sleeps until: a receive's timer
  ** is usually cancelled soon, and the thread waking at its old deadline finds the rest. */
  if (st == 0 && t->deadline < tm->sleep_until) pthread_cond_signal(&tm->cond);
  pthread_mutex_unlock(&tm->lock);
  return st;
}

uint64_t timer_wake(mb_runtime *rt, uint64_t pid, uint32_t gen, uint64_t deadline) {
  tmr *t = calloc(1, sizeof *t);
  uint64_t id;
  if (t == NULL) return 0;
  t->id = id = rt_make_ref(rt);
  t->deadline = deadline;
  t->kind = T_WAKE;
  t->pid = pid;
  t->gen = gen;
  if (add(rt->tm, t) != 0) {
    free(t);
    return 0;
  }
  return id;   /* not t->id: once added, a near deadline may fire and free t at once */
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
  size_t slot;
  pthread_mutex_lock(&tm->lock);
  tmr *t = map_get(tm, id, &slot);
  if (t) {
    u64map_del(&tm->map, slot);
    heap_remove(tm, t);
    if (left) *left = left_ms(t);
  }
  pthread_mutex_unlock(&tm->lock);
  if (t) tmr_free(t);
  return t != NULL;
}

int timer_read(mb_runtime *rt, uint64_t id, double *left) {
  timers *tm = rt->tm;
  size_t slot;
  pthread_mutex_lock(&tm->lock);
  tmr *t = map_get(tm, id, &slot);
  if (t) *left = left_ms(t);
  pthread_mutex_unlock(&tm->lock);
  return t != NULL;
}
