/*
** sched.h — the schedulers: N threads, a run queue each, work stealing, sleeping when idle.
**
** A process is in at most one run queue, and only while RUNNABLE. A scheduler thread takes
** a process from its own queue (or steals from another), runs it for one slice with
** proc_run, and goes on. Processes woken by a scheduler thread go to that thread's queue
** (the waker and the woken often talk again: keep them on one core); processes woken from
** other threads (timers, host) go to the queue of the scheduler that ran them last.
**
** Threads: sched_enqueue from any thread; sched_self on any thread (NULL off-scheduler).
*/
#ifndef SCHED_H
#define SCHED_H

#include <pthread.h>
#include <stdatomic.h>

#include "msg.h"
#include "proc.h"

struct sched {
  int id;
  mb_runtime *rt;
  pthread_t thread;
  int started;
  pthread_mutex_t lock;         /* guards the queue, wake */
  pthread_cond_t cond;
  proc *head, *tail;
  _Atomic int len;
  _Atomic int sleeping;
  _Atomic int busy;             /* running a process now */
  int wake;                     /* a wake-up was posted while it slept */
  msg_enc *enc;                 /* codec scratch of this thread */
  proc *current;                /* process being run */
  unsigned rnd;                 /* victim choice for stealing */
};

int sched_start(mb_runtime *rt);
/* Stop and join the scheduler threads (after every process has ended). */
void sched_stop(mb_runtime *rt);
void sched_free(mb_runtime *rt);

/* Put a RUNNABLE process in a run queue and wake a scheduler if needed. */
void sched_enqueue(proc *p);

/* The scheduler running on this thread, or NULL. */
sched *sched_self(void);

/* The codec scratch of the calling thread's scheduler (or of the host path under its lock). */
msg_enc *sched_encoder(void);

#endif
