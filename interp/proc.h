/*
** proc.h — processes: the process table, spawning, running a process's first steps, ending it.
**
** A process is a lua_State of its own whose body runs in a coroutine (p->body) so the
** scheduler can suspend it. Fields are grouped by who may touch them:
**   - "shared": atomics that other threads read or change (state, signal flags, refcount);
**   - "owner": only the thread currently running the process (handed over through the
**     run-queue lock, so these need no atomics).
**
** Lifetime: proc structs are recycled through a pool and never returned to malloc while the
** runtime lives, so a pid lookup may safely touch a struct that has just died: it takes a
** reference only if the count is not zero and the pid still matches (proc_lookup). The
** process table holds one reference while the process is alive.
**
** A host mailbox (hostbox.c) is a proc without a Lua state: it is never scheduled, and
** whoever holds its lock acts as its owner.
**
** States (p->state):
**   RUNNABLE  in a run queue, or about to be put in one
**   RUNNING   a scheduler is executing it
**   WAITING   in receive: a message, a signal or its timer wakes it
**   SLEEPING  in sleep: a signal or its timer wakes it
**   EXITING   ended; its slot is going away
** Whoever moves WAITING/SLEEPING -> RUNNABLE (compare-and-swap) must enqueue the process.
*/
#ifndef PROC_H
#define PROC_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <lua.h>

#include "mbox.h"
#include "moonbeam.h"

enum { P_RUNNABLE = 1, P_RUNNING, P_WAITING, P_SLEEPING, P_EXITING };

/* Why the body yielded to the scheduler (p->yield); Y_NONE means a user coroutine yield. */
enum { Y_NONE = 0, Y_PREEMPT, Y_WAIT, Y_SLEEP, Y_EXIT };

/* What a new process runs. */
enum { SPAWN_FUNC, SPAWN_MFA, SPAWN_FILE, SPAWN_STRING, SPAWN_MAIN };

typedef struct spawn_req {
  int kind;
  unsigned char *blob;   /* SPAWN_FUNC: f and its args; SPAWN_MFA: the args; SPAWN_MAIN: cli args */
  size_t len;
  char *what;            /* "mod.fn", a file path, or a chunk's source */
  char *chunkname;       /* SPAWN_STRING */
  char *path, *cpath;    /* package.path/cpath to start with (NULL: from the environment) */
} spawn_req;

typedef struct spawn_opts {
  uint64_t link;         /* pid to link with before the child runs (0: none) */
  uint64_t monitor;      /* watcher pid to monitor the child (0: none) */
  uint64_t monitor_ref;  /* out: the monitor's ref */
  const char *name;      /* register the child under this name */
  int trap_exit;
  size_t max_heap;       /* bytes; 0 = no limit */
  int main;              /* the host's first process: the runtime halts when it ends */
} spawn_opts;

typedef struct mon {
  uint64_t ref;
  uint64_t pid;          /* the other side */
  char *name;            /* monitored by name (watcher side only), or NULL */
  int alias;             /* the ref is also an alias, dropped with the monitor */
} mon;

typedef struct pidset {
  uint64_t *v;
  size_t n, cap;
} pidset;

typedef struct monset {
  mon *v;
  size_t n, cap;
} monset;

struct pmod;

typedef struct proc proc;
struct proc {
  /* shared (refs and pid come first: a recycled struct is cleared from `state` on, since a
  ** stale lookup may still be reading refs) */
  _Atomic int refs;
  _Atomic uint64_t pid;
  _Atomic int state;
  _Atomic int sigpending;       /* a non-message signal is in the inbox */
  _Atomic uint32_t wait_gen;    /* generation of the current receive/sleep timer */
  _Atomic uint32_t tmo_fired;   /* generation whose timer has fired */
  _Atomic int home;             /* scheduler that last ran it */
  _Atomic int ordered_stop;     /* process.flag("ordered_stop"): mb_stop shuts it down first */
  _Atomic int stop_sent;        /* mb_stop has sent it "shutdown" (the stopping thread) */
  _Atomic int net_owner;        /* it has owned a socket: its death closes its sockets (net.c) */
  mbox box;
  proc *next_run;               /* run-queue link, under that queue's lock */
  proc *pool_next;              /* free-pool link, under the table lock */
  mb_runtime *rt;
  struct hostbox *host;         /* a host mailbox: no Lua state (hostbox.c); set before publish */
  uint64_t parent;              /* the process that spawned it linked (0: none); set before publish */

  /* owner */
  lua_State *L;                 /* the state's main thread */
  lua_State *body;              /* coroutine running the body */
  lua_State *cur;               /* innermost coroutine running now */
  spawn_req *boot;              /* what to run, until the first run */
  int nargs;                    /* values waiting on the body's stack for its first resume */
  int yield;                    /* Y_*: why the body last yielded */
  int status_hint;              /* P_*: what process.info reports while signals are handled */
  int exiting;                  /* an exit is decided; reason holds it */
  int killed;                   /* the exit came from a signal, not from the body itself */
  int wait_abort;               /* a receive could not wait: make it fail */
  int stop_owed;                /* stop at the next line event (a program line hook is set) */
  int interrupted;              /* raise "interrupted!" at the next reduction check */
  int trap_exit;
  int warn_on, warn_cont;       /* lua_setwarnf state */
  int user_hooks;               /* threads with a debug.sethook hook */
  unsigned char *reason;        /* exit reason blob (malloc'd) */
  size_t reasonlen;
  uint64_t reds, slice_end;     /* reductions so far, and where this slice ends */
  size_t mem, max_heap;         /* Lua heap bytes, and the limit (0: none) */
  int over_heap;                /* an allocation went past max_heap */
  pidset links;
  pidset aliases;               /* alias refs this process made (to drop them at death) */
  monset mon_out;               /* monitors we hold on others */
  monset mon_in;                /* monitors others hold on us */
  int qref;                     /* registry ref of the decoded-message table */
  uint64_t qhead, qtail;        /* decoded messages are q[qhead .. qtail-1], with holes */
  size_t qlen;                  /* decoded messages still queued */
  mbox_item *decoding;          /* item being decoded (freed if a decode unwinds) */
  uint64_t mark_ref, mark_seq;  /* newest ref made here, and the queue position then */
  uint64_t wait_timer;          /* timer of the current receive/sleep (0: none) */
  uint64_t msgs_in, msgs_out;
  uint64_t scanned;             /* messages receive has tested against a matcher */
  struct pmod *mods;            /* modules loaded through the code server, and versions */
  size_t nmods;
  uint64_t code_epoch;          /* the code server's epoch when last looked at */
  int old_code;                 /* modules whose older version may still be on the stack */
  int code_hold;                /* code.switching(false): receive and sleep do not switch */
  char *initial_call;

  /* under the name-registry lock */
  char *name;
};

/* The runtime's table of live processes (one per runtime, inside mb_runtime). */
typedef struct ptab ptab;

int ptab_init(mb_runtime *rt);
void ptab_free(mb_runtime *rt);
size_t ptab_count(mb_runtime *rt);
/* Calls f on every live pid (a snapshot; processes may die meanwhile). */
void ptab_each(mb_runtime *rt, void (*f)(uint64_t pid, void *ud), void *ud);

/* A referenced process for pid, or NULL if it is not alive; release with proc_release. */
proc *proc_lookup(mb_runtime *rt, uint64_t pid);
void proc_release(proc *p);

/* The process whose state L (any of its threads) belongs to. */
static inline proc *proc_of(lua_State *L) { return *(proc **)lua_getextraspace(L); }

/*
** Create and start a process. Takes ownership of req (freed on failure too). The parent
** may be NULL (the host or the runtime). Returns 0 and the pid, or MB_ENAME when the
** name is taken (nothing is spawned), or MB_ENOMEM / MB_ESTOPPED.
*/
int proc_spawn(mb_runtime *rt, proc *parent, spawn_req *req, spawn_opts *opts,
               uint64_t *pid);
void spawn_req_free(spawn_req *req);

/* Deliver an item to pid (any thread). Takes ownership of m (NULL, from a failed
** allocation, is ignored). When pid is dead, answers as the dead process would (noproc
** replies to link/monitor, nil to info). */
void proc_deliver(mb_runtime *rt, uint64_t pid, mbox_item *m);

/* A published proc for a host mailbox (no Lua state, never scheduled); see hostbox.c. */
int proc_new_host(mb_runtime *rt, struct hostbox *hb, uint64_t *pid);

/* Death in two halves, for host mailboxes (a Lua process's own end does both, in finish):
** proc_unlist closes the mailbox and unpublishes the pid (under the mailbox's lock);
** proc_bury tells links and monitors, frees what p holds and drops the table's reference. */
void proc_unlist(proc *p);
void proc_bury(proc *p);

/* Make a waiting/sleeping process runnable after something it waits for arrived. */
void proc_wake(proc *p, int also_sleeping);

/* Decide that p ends with the given reason blob (copied); the owner acts on it soon. */
void proc_set_exit(proc *p, const unsigned char *reason, size_t len, int killed);
void proc_set_exit_string(proc *p, const char *reason, int killed);

/* Scheduler side: run p for one slice; returns when it yields, waits or ends. */
void proc_run(proc *p);

/* Run fn(L, ud) on p's main thread in protected mode; returns the lua_pcall status. */
int proc_protect(proc *p, lua_CFunction fn, void *ud);

/* Raise "interrupted!", as lua does on Ctrl-C (never returns). */
int proc_raise_interrupted(lua_State *L, proc *p);

/* Raise the error that unwinds a killed process (never returns). */
int proc_raise_killed(lua_State *L);

#endif
