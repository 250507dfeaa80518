/* sched.c — scheduler threads: per-thread run queues, work stealing, sleeping when idle. */
#include <sched.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "mbconf.h"
#include "rt.h"
#include "sched.h"

static _Thread_local sched *self_sched;

sched *sched_self(void) { return self_sched; }

msg_enc *sched_encoder(void) { return self_sched ? self_sched->enc : NULL; }

/* ---------------------------------------------------------------- queues */

static void push_locked(sched *s, proc *p) {
  p->next_run = NULL;
  if (s->tail) s->tail->next_run = p;
  else s->head = p;
  s->tail = p;
  atomic_fetch_add(&s->len, 1);
}

static proc *pop_locked(sched *s) {
  proc *p = s->head;
  if (p == NULL) return NULL;
  s->head = p->next_run;
  if (s->head == NULL) s->tail = NULL;
  atomic_fetch_sub(&s->len, 1);
  p->next_run = NULL;
  return p;
}

/* Wake s if it sleeps. The flag is read after the work was published, and the sleeper sets
** it before its last look for work, so one of the two always sees the other. */
static void poke(sched *s) {
  if (!atomic_load(&s->sleeping)) return;
  pthread_mutex_lock(&s->lock);
  s->wake = 1;
  pthread_cond_signal(&s->cond);
  pthread_mutex_unlock(&s->lock);
}

/* Wake one sleeping scheduler other than me, so it can steal. */
static void poke_other(mb_runtime *rt, sched *me) {
  if (atomic_load(&rt->nsleeping) == 0) return;
  for (int i = 0; i < rt->nsched; i++) {
    sched *s = &rt->scheds[i];
    if (s != me && atomic_load(&s->sleeping)) {
      poke(s);
      return;
    }
  }
}

void sched_enqueue(proc *p) {
  mb_runtime *rt = p->rt;
  sched *me = self_sched;
  sched *s = (me && me->rt == rt) ? me : &rt->scheds[atomic_load(&p->home)];
  int len;
  pthread_mutex_lock(&s->lock);
  push_locked(s, p);
  len = atomic_load(&s->len);
  pthread_mutex_unlock(&s->lock);
  if (s != me) poke(s);
  /* more than the running process can use: let an idle thread take some */
  if (len > 1) poke_other(rt, s);
}

/* Take about half of victim's queue (at least one), oldest first, into mine. */
static proc *steal(sched *me) {
  mb_runtime *rt = me->rt;
  for (int k = 0; k < rt->nsched; k++) {
    sched *v = &rt->scheds[(me->rnd + (unsigned)k) % (unsigned)rt->nsched];
    proc *first, *p;
    int n;
    if (v == me || atomic_load(&v->len) == 0) continue;
    pthread_mutex_lock(&v->lock);
    n = (atomic_load(&v->len) + 1) / 2;
    first = pop_locked(v);
    proc *taken = NULL, **last = &taken;
    for (int i = 1; i < n && (p = pop_locked(v)) != NULL; i++) {
      *last = p;
      last = &p->next_run;
    }
    pthread_mutex_unlock(&v->lock);
    if (first == NULL) continue;
    me->rnd = me->rnd * 1103515245u + 12345u;
    if (taken) {
      pthread_mutex_lock(&me->lock);
      for (p = taken; p; ) {
        proc *next = p->next_run;
        push_locked(me, p);
        p = next;
      }
      pthread_mutex_unlock(&me->lock);
    }
    return first;
  }
  return NULL;
}

static proc *next_local(sched *s) {
  proc *p;
  if (atomic_load(&s->len) == 0) return NULL;
  pthread_mutex_lock(&s->lock);
  p = pop_locked(s);
  pthread_mutex_unlock(&s->lock);
  return p;
}

static int work_anywhere(mb_runtime *rt) {
  for (int i = 0; i < rt->nsched; i++)
    if (atomic_load(&rt->scheds[i].len) > 0) return 1;
  return 0;
}

static int others_busy(mb_runtime *rt, sched *me) {
  for (int i = 0; i < rt->nsched; i++)
    if (&rt->scheds[i] != me && atomic_load(&rt->scheds[i].busy)) return 1;
  return 0;
}

/*
** Sleep until poked (or stopping). Announce the sleep first, then look once more.
** While another scheduler is running something, wake every millisecond to look for work
** to steal: a process woken onto a busy scheduler's queue must not wait there for long
** while this core idles. With nothing running anywhere, sleep until poked.
*/
static void idle_sleep(sched *s) {
  mb_runtime *rt = s->rt;
  pthread_mutex_lock(&s->lock);
  atomic_store(&s->sleeping, 1);
  atomic_fetch_add(&rt->nsleeping, 1);
  if (!work_anywhere(rt) && atomic_load(&rt->state) != RT_STOPPED) {
    if (others_busy(rt, s)) {
      struct timespec ts;
      clock_gettime(CLOCK_MONOTONIC, &ts);
      ts.tv_nsec += MB_IDLE_POLL_NS;
      if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
      }
      if (!s->wake) pthread_cond_timedwait(&s->cond, &s->lock, &ts);
    } else {
      while (!s->wake && atomic_load(&rt->state) != RT_STOPPED)
        pthread_cond_wait(&s->cond, &s->lock);
    }
  }
  s->wake = 0;
  atomic_fetch_sub(&rt->nsleeping, 1);
  atomic_store(&s->sleeping, 0);
  pthread_mutex_unlock(&s->lock);
}

static proc *find_work(sched *s) {
  for (int spin = 0; spin < MB_IDLE_SPINS; spin++) {
    proc *p = next_local(s);
    if (p == NULL) p = steal(s);
    if (p) return p;
    if (atomic_load(&s->rt->state) == RT_STOPPED) return NULL;
    sched_yield();
  }
  return NULL;
}

static void *sched_main(void *arg) {
  sched *s = arg;
  mb_runtime *rt = s->rt;
  self_sched = s;
  while (atomic_load(&rt->state) != RT_STOPPED) {
    proc *p = next_local(s);
    if (p == NULL) p = find_work(s);
    if (p == NULL) {
      idle_sleep(s);
      continue;
    }
    s->current = p;
    atomic_store(&s->busy, 1);
    atomic_store_explicit(&p->home, s->id, memory_order_relaxed);
    proc_run(p);
    atomic_store(&s->busy, 0);
    s->current = NULL;
  }
  self_sched = NULL;
  return NULL;
}

/* ---------------------------------------------------------------- life */

static int online_cpus(void) {
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n < 1 ? 1 : (int)n;
}

int sched_start(mb_runtime *rt) {
  pthread_attr_t attr;
  int n = rt->cfg.schedulers > 0 ? rt->cfg.schedulers : online_cpus();
  if (n > MB_MAX_SCHEDULERS) n = MB_MAX_SCHEDULERS;
  rt->scheds = calloc((size_t)n, sizeof *rt->scheds);
  if (rt->scheds == NULL) return MB_ENOMEM;
  rt->nsched = n;
  for (int i = 0; i < n; i++) {
    sched *s = &rt->scheds[i];
    s->id = i;
    s->rt = rt;
    s->rnd = (unsigned)i * 2654435761u + 1;
    pthread_mutex_init(&s->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->cond, &ca);
    pthread_condattr_destroy(&ca);
    s->enc = msg_enc_new();
    if (s->enc == NULL) return MB_ENOMEM;
    msg_enc_cache_code(s->enc, 1);
  }
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, MB_SCHED_STACK);
  for (int i = 0; i < n; i++) {
    if (pthread_create(&rt->scheds[i].thread, &attr, sched_main, &rt->scheds[i]) != 0) {
      pthread_attr_destroy(&attr);
      return MB_ETHREAD;
    }
    rt->scheds[i].started = 1;
  }
  pthread_attr_destroy(&attr);
  return 0;
}

void sched_stop(mb_runtime *rt) {
  for (int i = 0; i < rt->nsched; i++) {
    sched *s = &rt->scheds[i];
    pthread_mutex_lock(&s->lock);
    s->wake = 1;
    pthread_cond_signal(&s->cond);
    pthread_mutex_unlock(&s->lock);
  }
  for (int i = 0; i < rt->nsched; i++)
    if (rt->scheds[i].started) {
      pthread_join(rt->scheds[i].thread, NULL);
      rt->scheds[i].started = 0;
    }
}

void sched_free(mb_runtime *rt) {
  for (int i = 0; i < rt->nsched; i++) {
    sched *s = &rt->scheds[i];
    msg_enc_free(s->enc);
    pthread_cond_destroy(&s->cond);
    pthread_mutex_destroy(&s->lock);
  }
  free(rt->scheds);
  rt->scheds = NULL;
  rt->nsched = 0;
}
