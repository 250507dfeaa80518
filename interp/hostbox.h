/*
** hostbox.h — host mailboxes: pids that Lua processes send to and host threads receive on
** (mb_mailbox_open, mb_receive, mb_mailbox_close).
**
** A host mailbox is a proc without a Lua state (proc.h). It is never scheduled: the thread
** that delivers an item to it, or the host thread that receives, holds its lock and acts as
** its owner for that moment, so signals (links, monitors, exit signals, info requests) are
** acted on at once, by the same code as for a Lua process (link.c). It traps exits; only
** exit(box, "kill") or mb_mailbox_close ends it, and mb_stop.
**
** Threads: any. The lock is taken with no other held, and while it is held the only other
** locks taken are the leaf locks of the registry, the process table, the timers and the
** run queues (a reply to an info request, a monitor's signal), never another mailbox's: a
** host mailbox never links or asks for info, and monitors only Lua processes.
*/
#ifndef HOSTBOX_H
#define HOSTBOX_H

#include <stdint.h>

#include "mbox.h"
#include "proc.h"

typedef struct hostbox hostbox;

/* A new host mailbox; its pid in *pid. */
int hostbox_open(mb_runtime *rt, uint64_t *pid);

/* An item was pushed to host mailbox p (proc_deliver, which holds a reference): act on
** the signals, wake the receivers, and end the mailbox if a signal killed it. */
void hostbox_arrived(proc *p);

/* Take the oldest message (an SIG_MSG item, now the caller's). 0; or MB_ETIMEDOUT,
** MB_ENOPROC (closed, or not alive), MB_ESTOPPED (the runtime is stopping), MB_ENOTBOX. */
int hostbox_take(mb_runtime *rt, uint64_t pid, int timeout_ms, mbox_item **out);

/* End the mailbox with reason "normal". 0, MB_ENOPROC or MB_ENOTBOX. */
int hostbox_close(mb_runtime *rt, uint64_t pid);

/* Monitor pid (not a host mailbox) from host mailbox box with ref; drop such a monitor.
** 0, MB_ENOPROC (box) or MB_ENOTBOX / MB_EINVAL. */
int hostbox_monitor(mb_runtime *rt, uint64_t box, uint64_t pid, uint64_t ref);
int hostbox_demonitor(mb_runtime *rt, uint64_t box, uint64_t ref);

/* Wake every receiver waiting on a host mailbox, so they see that the runtime stops. */
void hostbox_wake_all(mb_runtime *rt);

/* Free hb (its proc's last reference is gone). */
void hostbox_free(hostbox *hb);

#endif
