/*
** net.h — sockets: the runtime's socket table and its I/O thread (epoll).
**
** A socket is a struct nsock in a runtime-wide table, named by a 64-bit id that never
** repeats within a runtime; Lua holds only the id (lnet.c), so a socket handle can travel
** in messages (codec tag MSG_SOCKET). Each socket has one owner pid: only the owner reads,
** writes, closes it or changes its options (lnet.c checks), and when the owner dies the
** socket closes (net_proc_ended, from proc.c).
**
** Waiting: a process never blocks a scheduler. It tries the syscall non-blocking; if that
** would block it registers a waiter (its pid and a fresh ref) with net_wait and receives
** the message {ref} that the I/O thread sends when the socket is ready (or closed). The
** I/O thread uses EPOLLONESHOT: after each event the socket is re-armed with what is still
** wanted (waiters, and reading in active mode), so an idle socket costs nothing.
**
** Active mode: the I/O thread reads and delivers {"tcp", sock, data} (one message per
** packet with framing), {"tcp_closed", sock}, {"tcp_error", sock, reason},
** {"tcp_passive", sock}, or {"udp", sock, ip, port, data}, to the owner, counting down
** active = "once" | N as gen_tcp does.
**
** Lock discipline (also listed in rt.h):
**   net->lock    the table (id -> nsock, next id) and the resolver count; a leaf: nothing
**                else is taken while it is held.
**   s->lock      one socket's state (fd, owner, options, buffer, waiters). Taken before
**                net->lock (close removes the socket from the table while holding it), and
**                held while delivering to processes (proc_deliver takes only leaf locks:
**                a mailbox push and a run-queue lock), so that the messages of one socket
**                are delivered in order and a waiter removed under the lock has already
**                got its message. Never two socket locks at once (accept takes the
**                listener's, releases it, then sets up the new socket).
** A socket is reference-counted: the table holds one reference while it is open; lookups
** (net_get) take one and net_put drops it; the last drop frees it.
**
** Threads: every function here is safe from any thread, except net_init/net_free
** (mb_new/mb_free) and net_start/net_stop (mb_start/mb_stop).
*/
#ifndef NET_H
#define NET_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "msg.h"
#include "rt.h"

enum { NS_TCP, NS_LISTEN, NS_UDP };

/* active: off (passive), true, "once", or a count N (gen_tcp's {active, N}). */
enum { ACT_OFF, ACT_ON, ACT_ONCE, ACT_N };

/* packet framing: raw bytes, 1/2/4-byte big-endian length prefix, or lines. */
enum { PK_RAW = 0, PK_1 = 1, PK_2 = 2, PK_4 = 4, PK_LINE = 5 };

#define NET_LINE_MAX (64u << 10)      /* default packet_size for lines */
#define NET_PACKET_MAX (64u << 20)    /* default packet_size for length framing */

typedef struct nwait {
  uint64_t pid, ref;
} nwait;

typedef struct nsock nsock;
struct nsock {
  uint64_t id;                 /* set before publishing; never changes */
  _Atomic int refs;
  pthread_mutex_t lock;
  mb_runtime *rt;
  int kind;                    /* NS_*; set before publishing */
  /* under lock */
  int fd;                      /* -1 once closed */
  uint64_t owner;
  int active, count;           /* ACT_*, and the counter of ACT_N */
  int packet;                  /* PK_* */
  size_t packet_size;          /* 0: the default of the framing */
  int nodelay, keepalive, recbuf, sndbuf;   /* as set, inherited by accepted sockets */
  msg_buf in;                  /* bytes read but not yet handed out: in.p[inpos .. in.len) */
  size_t inpos;
  int eof;                     /* the peer closed (read returned 0) */
  int closed_sent;             /* active mode told the owner tcp_closed */
  nwait *rw;                   /* processes waiting to read / accept */
  size_t nrw, caprw;
  nwait ww;                    /* the process waiting to write / connect (ref 0: none) */
};

int net_init(mb_runtime *rt);
int net_start(mb_runtime *rt);
/* Stops and joins the I/O thread and resolvers, closes every socket still open. */
void net_stop(mb_runtime *rt);
void net_free(mb_runtime *rt);

/* A new socket around fd (non-blocking already), owned by owner, in the table. Returns it
** with a reference for the caller, or NULL (fd is then closed). */
nsock *net_add(mb_runtime *rt, int fd, int kind, uint64_t owner);
/* The socket with this id, with a reference, or NULL if it is closed. */
nsock *net_get(mb_runtime *rt, uint64_t id);
void net_put(nsock *s);

/* Under s->lock: register a waiter for reading ('r') or writing ('w'); wake it at once
** if the socket is closed. 0, or MB_ENOMEM. */
int net_wait(nsock *s, int dir, uint64_t pid, uint64_t ref);
/* Under s->lock: remove the waiter with this ref; 1 if it was there (no message will
** come), 0 if it was woken already (its message is in the mailbox). */
int net_unwait(nsock *s, uint64_t ref);
/* Under s->lock: arm epoll with what the socket still wants. */
void net_arm(nsock *s);
/* Under s->lock: the active mode (ACT_N adds n to the count; at 0 the socket turns passive
** and the owner gets {"tcp_passive", sock}); an active socket delivers what it has. */
void net_set_active(nsock *s, int mode, int n);
/* Under s->lock: in active mode, deliver what is buffered and what can be read now. */
void net_pump(nsock *s);
/* Under s->lock: close the fd, wake the waiters, drop the table's reference (s stays valid
** while the caller holds its own). */
void net_close_locked(nsock *s);
/* Under s->lock: the next whole packet of at most `want` bytes (raw; 0: any) from the
** buffer: 1 and its place, 0 if more is needed, or -EMSGSIZE. */
int net_packet(nsock *s, size_t want, size_t *start, size_t *len, size_t *consume);
/* Under s->lock: read what the kernel has into the buffer: >0 bytes, 0 at EOF, or -errno. */
long net_fill(nsock *s, size_t atleast);
void net_consume(nsock *s, size_t n);

/* The owner p ended: close its sockets. */
void net_proc_ended(mb_runtime *rt, uint64_t pid);
/* Mark p as (possibly) owning sockets, so its death looks for them. */
void net_mark_owner(mb_runtime *rt, uint64_t pid);

/* Calls f on each open socket (under the table lock: f must not lock). */
void net_each(mb_runtime *rt, void (*f)(nsock *s, void *ud), void *ud);

/* Look up host (a name) on a resolver thread; answers pid with {ref, ip} or
** {ref, false, reason}, sent to ref as an alias (process.alias): dropped if the asker has
** unaliased it (gave up waiting). 0, or MB_ENOMEM. */
int net_resolve(mb_runtime *rt, const char *host, uint64_t pid, uint64_t ref);

/* "econnrefused" for ECONNREFUSED, "closed" for EPIPE; errno names in lower case. */
const char *net_errname(int err);

/* Text of an address ("127.0.0.1") and its port. */
void net_addr_text(const struct sockaddr_storage *sa, char *ip, size_t iplen, int *port);

#endif
