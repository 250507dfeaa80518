/* hostbox.c — host mailboxes: pids the host receives on (see hostbox.h). */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#include "hostbox.h"
#include "link.h"
#include "rt.h"

struct hostbox {
  pthread_mutex_t lock;   /* whoever holds it is the mailbox's owner */
  pthread_cond_t cond;    /* something came, the mailbox ended, or the runtime stops */
  int dead;               /* under lock: unlisted (the pid no longer resolves) */
};

int hostbox_open(mb_runtime *rt, uint64_t *pid) {
  pthread_condattr_t ca;
  hostbox *hb = calloc(1, sizeof *hb);
  int st;
  if (hb == NULL) return MB_ENOMEM;
  pthread_mutex_init(&hb->lock, NULL);
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&hb->cond, &ca);
  pthread_condattr_destroy(&ca);
  if ((st = proc_new_host(rt, hb, pid)) != 0) hostbox_free(hb);
  return st;
}

void hostbox_free(hostbox *hb) {
  pthread_cond_destroy(&hb->cond);
  pthread_mutex_destroy(&hb->lock);
  free(hb);
}

/* Under the lock: act on what the inbox holds. If that ended the mailbox, unlist it and
** return 1: the caller buries it once the lock is released. */
static int settle(proc *p) {
  if (p->host->dead) return 0;
  link_signals(p);
  if (!p->exiting) return 0;
  p->host->dead = 1;
  proc_unlist(p);
  return 1;
}

void hostbox_arrived(proc *p) {
  hostbox *hb = p->host;
  int ended;
  pthread_mutex_lock(&hb->lock);
  ended = settle(p);
  pthread_cond_broadcast(&hb->cond);
  pthread_mutex_unlock(&hb->lock);
  if (ended) proc_bury(p);
}

/* The referenced host mailbox pid, or NULL and *st. */
static proc *lookup_box(mb_runtime *rt, uint64_t pid, int *st) {
  proc *p = proc_lookup(rt, pid);
  if (p == NULL) {
    *st = MB_ENOPROC;
    return NULL;
  }
  if (p->host == NULL) {
    proc_release(p);
    *st = MB_ENOTBOX;
    return NULL;
  }
  return p;
}

static struct timespec after_ms(int ms) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  ts.tv_sec += ms / 1000;
  ts.tv_nsec += (long)(ms % 1000) * 1000000L;
  if (ts.tv_nsec >= 1000000000L) {
    ts.tv_sec++;
    ts.tv_nsec -= 1000000000L;
  }
  return ts;
}

int hostbox_take(mb_runtime *rt, uint64_t pid, int timeout_ms, mbox_item **out) {
  struct timespec deadline;
  proc *p;
  hostbox *hb;
  int st = 0, ended = 0, expired = 0;
  if ((p = lookup_box(rt, pid, &st)) == NULL) return st;
  hb = p->host;
  if (timeout_ms > 0) deadline = after_ms(timeout_ms);
  pthread_mutex_lock(&hb->lock);
  for (;;) {
    if (atomic_load(&rt->state) != RT_RUNNING) {   /* first: mb_stop also kills the box */
      st = MB_ESTOPPED;
      break;
    }
    ended = settle(p);
    if (hb->dead) {
      st = MB_ENOPROC;
      break;
    }
    if ((*out = mbox_shift(&p->box)) != NULL) break;
    if (timeout_ms == 0 || expired) {
      st = MB_ETIMEDOUT;
      break;
    }
    if (timeout_ms < 0) pthread_cond_wait(&hb->cond, &hb->lock);
    else expired = pthread_cond_timedwait(&hb->cond, &hb->lock, &deadline) == ETIMEDOUT;
  }
  if (ended) pthread_cond_broadcast(&hb->cond);
  pthread_mutex_unlock(&hb->lock);
  if (ended) proc_bury(p);
  proc_release(p);
  return st;
}

int hostbox_close(mb_runtime *rt, uint64_t pid) {
  proc *p;
  hostbox *hb;
  int st = 0, ended = 0;
  if ((p = lookup_box(rt, pid, &st)) == NULL) return st;
  hb = p->host;
  pthread_mutex_lock(&hb->lock);
  if (hb->dead) {
    st = MB_ENOPROC;
  } else {
    proc_set_exit_string(p, "normal", 0);
    ended = settle(p);
    pthread_cond_broadcast(&hb->cond);
  }
  pthread_mutex_unlock(&hb->lock);
  if (ended) proc_bury(p);
  proc_release(p);
  return st;
}

/* Run f(p, ud) as the owner of host mailbox box. */
static int as_owner(mb_runtime *rt, uint64_t box, void (*f)(proc *, void *), void *ud) {
  proc *p;
  int st = 0;
  if ((p = lookup_box(rt, box, &st)) == NULL) return st;
  pthread_mutex_lock(&p->host->lock);
  if (p->host->dead) {
    st = MB_ENOPROC;
  } else {
    f(p, ud);
    pthread_cond_broadcast(&p->host->cond);   /* a DOWN may be queued already */
  }
  pthread_mutex_unlock(&p->host->lock);
  proc_release(p);
  return st;
}

typedef struct watch {
  uint64_t pid, ref;
  int st;
} watch;

static void monitor_as(proc *p, void *ud) {
  watch *w = ud;
  w->st = link_monitor(p, w->pid, NULL, w->ref, 0);
}

static void demonitor_as(proc *p, void *ud) {
  watch *w = ud;
  link_demonitor(p, w->ref, 1);
}

int hostbox_monitor(mb_runtime *rt, uint64_t box, uint64_t pid, uint64_t ref) {
  watch w = {pid, ref, 0};
  proc *t = proc_lookup(rt, pid);
  int st, is_box = t && t->host;
  if (t) proc_release(t);
  if (is_box) return MB_EINVAL;   /* one mailbox's lock is never held while taking another's */
  st = as_owner(rt, box, monitor_as, &w);
  return st ? st : w.st;
}

int hostbox_demonitor(mb_runtime *rt, uint64_t box, uint64_t ref) {
  watch w = {0, ref, 0};
  return as_owner(rt, box, demonitor_as, &w);
}

static void wake_one(uint64_t pid, void *ud) {
  proc *p = proc_lookup(ud, pid);
  if (p == NULL) return;
  if (p->host) {
    pthread_mutex_lock(&p->host->lock);
    pthread_cond_broadcast(&p->host->cond);
    pthread_mutex_unlock(&p->host->lock);
  }
  proc_release(p);
}

void hostbox_wake_all(mb_runtime *rt) {
  ptab_each(rt, wake_one, rt);
}
