/* mbconf.h — build knobs of the Moonbeam runtime; each can be overridden with -D. */
#ifndef MBCONF_H
#define MBCONF_H

/* Messages a process receives before its collector turns generational (lproc.c). */
#ifndef MB_GEN_GC_AFTER
#define MB_GEN_GC_AFTER 64
#endif

/* VM instructions between two calls of the preemption hook. */
#ifndef MB_HOOK_COUNT
#define MB_HOOK_COUNT 1000
#endif

/* Reductions (VM instructions, roughly) a process may run before it is preempted. */
#ifndef MB_SLICE
#define MB_SLICE 2000
#endif

/* Hook interval while a preemption is owed but the VM is in a non-yieldable C call. */
#ifndef MB_DEBT_HOOK_COUNT
#define MB_DEBT_HOOK_COUNT 100
#endif

/* Deepest table/function nesting a message may have (the codec recurses in C). */
#ifndef MB_MSG_MAXDEPTH
#define MB_MSG_MAXDEPTH 2000
#endif

/* Process table: 2^MB_PID_IDX_BITS slots at most, allocated in chunks. */
#ifndef MB_PID_IDX_BITS
#define MB_PID_IDX_BITS 24
#endif
#ifndef MB_PTAB_CHUNK
#define MB_PTAB_CHUNK 4096
#endif

/* Largest number of scheduler threads. */
#ifndef MB_MAX_SCHEDULERS
#define MB_MAX_SCHEDULERS 256
#endif

/* Times an idle scheduler looks for work before it sleeps. */
#ifndef MB_IDLE_SPINS
#define MB_IDLE_SPINS 64
#endif

/* An idle scheduler looks for work to steal this often while another one is busy (ns). */
#ifndef MB_IDLE_POLL_NS
#define MB_IDLE_POLL_NS 1000000L
#endif

/* Stack size of a scheduler thread (the codec and deep Lua C calls recurse). */
#ifndef MB_SCHED_STACK
#define MB_SCHED_STACK (16u << 20)
#endif

/* How long mb_stop lets supervision trees shut down in order by default (ms). */
#ifndef MB_STOP_ORDERED_MS
#define MB_STOP_ORDERED_MS 10000
#endif

/* How long mb_stop waits for killed processes to end before giving up on them (ms). */
#ifndef MB_STOP_TIMEOUT_MS
#define MB_STOP_TIMEOUT_MS 5000
#endif

#endif
