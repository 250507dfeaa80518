/*
** link.h — signals between processes: links, monitors, exit signals, info requests.
**
** Every signal travels through the target's mailbox, in order with its messages, and is
** acted on by the target itself (link_signals), at its next reduction check, before it
** runs, or in receive. So a process's links and monitors are only ever touched by the
** thread running it, and need no lock.
**
** Exit signals follow Erlang (OTP.md §1.2): `kill` by exit/2 cannot be trapped and becomes
** `killed`; `normal` from another process is ignored unless trapping; a trapping process
** gets {"EXIT", from, reason}; a link-exit is ignored when the link is already gone.
*/
#ifndef LINK_H
#define LINK_H

#include <stdint.h>

#include "proc.h"

/* Drain p's inbox: act on signals, queue messages (owner). */
void link_signals(proc *p);

/* The calls behind process.link/unlink/monitor/demonitor/exit (owner of p).
** link_link returns 0, or MB_ENOPROC when pid is dead and p does not trap exits.
** link_monitor takes the ref (made, and marked, by the caller): a dead target's DOWN is
** queued at once, after the mark. With alias, the ref is also an alias of p until the
** monitor ends (demonitor or DOWN). */
int link_link(proc *p, uint64_t pid);
void link_unlink(proc *p, uint64_t pid);
int link_monitor(proc *p, uint64_t pid, const char *name, uint64_t ref, int alias);
/* Make ref an alias of p / deactivate it (1 if it was p's active alias). */
int link_alias(proc *p, uint64_t ref);
int link_unalias(proc *p, uint64_t ref);
int link_demonitor(proc *p, uint64_t ref, int flush);
void link_exit_signal(proc *p, uint64_t to, const unsigned char *reason, size_t len);

/* Record the two sides of a link or monitor made at spawn (before the child runs). */
int link_add_spawn_link(proc *parent, proc *child);
int link_add_spawn_monitor(proc *watcher_or_null, uint64_t watcher, proc *child,
                           uint64_t ref);

/* At death, in this order: close the mailbox and settle the signals still in it
** (link_close), remove p from the table, then tell links and monitors (link_notify). */
void link_close(proc *p);
void link_notify(proc *p);

/* Answer to a signal that found its target dead (noproc exits and DOWNs, nil infos).
** Takes ownership of m (which may be NULL). */
void link_dead_target(mb_runtime *rt, uint64_t target, mbox_item *m);

/* Free p's link and monitor sets. */
void link_free(proc *p);

/* Build {"DOWN", ref, "process", item, reason} where item is pid or {name, node}. */
mbox_item *link_down_message(uint64_t ref, uint64_t pid, const char *name,
                             const unsigned char *reason, size_t len);

#endif
