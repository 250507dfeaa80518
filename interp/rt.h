/*
** rt.h — the runtime: one struct owns the schedulers, the process table, the name registry,
** the timers and the halt state, so two runtimes can live in one program.
**
** Lock discipline (no lock is ever held while taking another one, except as said here):
**   rt->stop_lock   one mb_stop at a time; held while it stops (it takes the others)
**   host mailbox    (hostbox.c) its owner's work; taken before the leaf locks below
**   rt->life_lock   halt state, main-process status, the count of live processes
**   ptab lock       slot allocation and the proc pool (ptab.c part of proc.c)
**   sched->lock     one run queue and its sleep flag (sched.c)
**   reg lock        names <-> pids and proc->name (reg.c)
**   timer lock      the timer heap (timer.c)
**   code lock       the code server's modules and versions (code.c)
**   socket lock     one socket's state (net.c); held while delivering that socket's messages
**                   (a mailbox push and a run-queue lock), and taken before the net lock
**   net lock        the socket table and the resolver count (net.c); a leaf
** Lock-free: pid lookup (refcount + pid check), mailbox pushes, process state changes.
*/
#ifndef RT_H
#define RT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>

#include "moonbeam.h"
#include "msg.h"

typedef struct sched sched;
typedef struct ptab ptab;
typedef struct reg reg;
typedef struct timers timers;
struct code;
struct net;

typedef struct preload {
  char *name;
  lua_CFunction open;
  struct preload *next;
} preload;

enum { RT_NEW, RT_RUNNING, RT_STOPPING, RT_STOPPED };

struct mb_runtime {
  mb_config cfg;
  char *lua_path, *lua_cpath;     /* copies of cfg's strings */
  int nsched;
  sched *scheds;
  ptab *procs;
  reg *names;
  timers *tm;
  struct code *code;              /* the code server (code.c) */
  struct net *net;                /* sockets and the I/O thread (net.c) */
  _Atomic uint64_t code_epoch;    /* goes up whenever the code server publishes a version */
  preload *preloads;              /* set before mb_start; read-only afterwards */
  _Atomic uint64_t next_ref;
  _Atomic int nsleeping;          /* schedulers asleep */
  _Atomic int state;              /* RT_* */
  _Atomic uint64_t main_pid;
  int no_halt;                    /* keep running when the main process ends */
  const char *progname;           /* for messages of the main process ("moonbeam") */

  pthread_mutex_t life_lock;
  pthread_cond_t life_cond;
  int halted, halt_status;        /* under life_lock */
  size_t nlive;                   /* under life_lock */

  pthread_mutex_t stop_lock;      /* one mb_stop at a time */
  pthread_mutex_t host_lock;      /* serialises host-side encoding */
  msg_enc *host_enc;
};

/* A fresh ref, unique within the runtime. */
uint64_t rt_make_ref(mb_runtime *rt);

/* Halt the runtime with an exit status (first call wins); mb_wait returns. */
void rt_halt(mb_runtime *rt, int status);
int rt_halting(mb_runtime *rt);

/* Book-keeping of live processes, for mb_stop. */
void rt_proc_started(mb_runtime *rt);
void rt_proc_ended(mb_runtime *rt);

/* Writes a whole buffer to a stdio stream in one piece, so lines from many threads never mix. */
void rt_write(FILE *f, const char *s, size_t len);

#endif
