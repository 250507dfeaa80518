/*
** timer.h — timers: receive timeouts, sleep, and send_after, fired by one timer thread.
**
** A min-heap of deadlines under one lock; the thread sleeps until the earliest one, and is
** woken only for a deadline before that (a cancelled timer is not taken back from its
** sleep: it wakes then and looks again). Firing happens outside the lock. A wake timer names a pid and a wait generation, so a timer that
** fires after its receive has finished wakes nothing.
**
** Threads: every function from any thread.
*/
#ifndef TIMER_H
#define TIMER_H

#include <stdint.h>

#include "mbox.h"
#include "moonbeam.h"

int timer_start(mb_runtime *rt);
void timer_stop(mb_runtime *rt);

/* Nanoseconds of the monotonic clock. */
uint64_t timer_now(void);

/* Wake pid (if its wait generation is still gen) at deadline (ns). Returns the timer id. */
uint64_t timer_wake(mb_runtime *rt, uint64_t pid, uint32_t gen, uint64_t deadline);

/* Deliver msg to dest (a pid, or a registered name when name != NULL) after ms.
** The timer id is ref. Takes ownership of msg and name. 0, or MB_ENOMEM. */
int timer_send(mb_runtime *rt, uint64_t ref, uint64_t dest, char *name, mbox_item *msg,
               double ms);

/* Cancel a timer: 1 and the ms left if it was pending, 0 if it fired or is unknown. */
int timer_cancel(mb_runtime *rt, uint64_t id, double *left_ms);
/* Ms left of a pending timer: 1 and *left_ms, or 0. */
int timer_read(mb_runtime *rt, uint64_t id, double *left_ms);

#endif
