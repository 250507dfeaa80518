/* net.c — the socket table and the I/O thread that waits on sockets with epoll (see net.h). */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "mbox.h"
#include "net.h"
#include "pid.h"
#include "proc.h"
#include "u64map.h"

#define EV_BATCH 256
#define PUMP_ROUNDS 64           /* reads per event in active mode before others get a turn */
#define READ_CHUNK (64u << 10)
#define KEEP_BUF (16u << 10)     /* an emptied read buffer bigger than this is freed */
#define DGRAM_MAX 65536

struct net {
  pthread_mutex_t lock;          /* the table, next_id, nresolving */
  pthread_cond_t cond;           /* a resolver thread ended */
  u64map map;                    /* id -> nsock* */
  uint64_t next_id;
  int nresolving;
  int epfd, evfd;                /* evfd (data 0 in epoll) wakes the thread to stop */
  pthread_t thread;
  int started;
  _Atomic int stop;
};

/* ================================================================ errors and addresses */

const char *net_errname(int err) {
  static __thread char buf[32];
  const char *name;
  size_t i;
  switch (err) {
    case EPIPE: return "closed";
    case EAGAIN: return "wouldblock";
    case ETIMEDOUT: return "etimedout";
  }
  name = strerrorname_np(err);
  if (name == NULL) return "eunknown";
  for (i = 0; name[i] && i < sizeof buf - 1; i++) buf[i] = (char)tolower((unsigned char)name[i]);
  buf[i] = '\0';
  return buf;
}

void net_addr_text(const struct sockaddr_storage *sa, char *ip, size_t iplen, int *port) {
  if (sa->ss_family == AF_INET6) {
    const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)sa;
    inet_ntop(AF_INET6, &a->sin6_addr, ip, (socklen_t)iplen);
    *port = ntohs(a->sin6_port);
  } else {
    const struct sockaddr_in *a = (const struct sockaddr_in *)sa;
    inet_ntop(AF_INET, &a->sin_addr, ip, (socklen_t)iplen);
    *port = ntohs(a->sin_port);
  }
}

/* ================================================================ the table */

int net_init(mb_runtime *rt) {
  struct net *n = calloc(1, sizeof *n);
  if (n == NULL) return MB_ENOMEM;
  pthread_mutex_init(&n->lock, NULL);
  pthread_cond_init(&n->cond, NULL);
  n->next_id = 1;
  n->epfd = n->evfd = -1;
  rt->net = n;
  return 0;
}

static void sock_free(nsock *s) {
  msg_buf_free(&s->in);
  free(s->rw);
  pthread_mutex_destroy(&s->lock);
  free(s);
}

nsock *net_add(mb_runtime *rt, int fd, int kind, uint64_t owner) {
  struct net *n = rt->net;
  struct epoll_event ev = {0};
  nsock *s = calloc(1, sizeof *s);
  if (s == NULL) {
    close(fd);
    return NULL;
  }
  pthread_mutex_init(&s->lock, NULL);
  msg_buf_init(&s->in);
  s->rt = rt;
  s->fd = fd;
  s->kind = kind;
  s->owner = owner;
  s->nodelay = s->keepalive = s->recbuf = s->sndbuf = -1;
  atomic_init(&s->refs, 2);   /* the table's and the caller's */
  net_mark_owner(rt, owner);
  pthread_mutex_lock(&n->lock);
  s->id = n->next_id++;
  ev.events = EPOLLONESHOT;   /* registered, but disarmed until something is wanted */
  ev.data.u64 = s->id;
  if (u64map_put(&n->map, s->id, (uint64_t)(uintptr_t)s) != 0 ||
      epoll_ctl(n->epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
    size_t i = u64map_find(&n->map, s->id);
    if (i != (size_t)-1) u64map_del(&n->map, i);
    pthread_mutex_unlock(&n->lock);
    close(fd);
    sock_free(s);
    return NULL;
  }
  pthread_mutex_unlock(&n->lock);
  return s;
}

nsock *net_get(mb_runtime *rt, uint64_t id) {
  struct net *n = rt->net;
  nsock *s = NULL;
  size_t i;
  pthread_mutex_lock(&n->lock);
  if ((i = u64map_find(&n->map, id)) != (size_t)-1) {
    s = (nsock *)(uintptr_t)n->map.vals[i];
    atomic_fetch_add(&s->refs, 1);
  }
  pthread_mutex_unlock(&n->lock);
  return s;
}

void net_put(nsock *s) {
  if (atomic_fetch_sub(&s->refs, 1) == 1) sock_free(s);
}

void net_each(mb_runtime *rt, void (*f)(nsock *, void *), void *ud) {
  struct net *n = rt->net;
  pthread_mutex_lock(&n->lock);
  for (size_t i = 0; i < n->map.cap; i++)
    if (n->map.keys[i]) f((nsock *)(uintptr_t)n->map.vals[i], ud);
  pthread_mutex_unlock(&n->lock);
}

/* ================================================================ delivery */

static void deliver(nsock *s, uint64_t pid, msg_buf *b) {
  if (b->p) proc_deliver(s->rt, pid, mbox_item_new(SIG_MSG, 0, 0, b->p, b->len));
  msg_buf_free(b);
}

/* {ref}: the readiness message a waiter receives. */
static void wake(nsock *s, nwait w) {
  msg_buf b;
  msg_buf_init(&b);
  if (msgb_count(&b, 1) || msgb_table(&b, 1, 0) || msgb_term(&b, w.ref)) msg_buf_free(&b);
  deliver(s, w.pid, &b);
}

static void wake_readers(nsock *s) {
  for (size_t i = 0; i < s->nrw; i++) wake(s, s->rw[i]);
  s->nrw = 0;
}

static void wake_writer(nsock *s) {
  if (s->ww.ref == 0) return;
  wake(s, s->ww);
  s->ww.ref = 0;
}

/* {tag, sock} or {tag, sock, str}: the active-mode messages. */
static void tell(nsock *s, const char *tag, const char *str, size_t len) {
  msg_buf b;
  msg_buf_init(&b);
  if (msgb_count(&b, 1) || msgb_table(&b, str ? 3 : 2, 0) || msgb_str(&b, tag, strlen(tag)) ||
      msgb_socket(&b, s->id) || (str && msgb_str(&b, str, len)))
    msg_buf_free(&b);
  deliver(s, s->owner, &b);
}

/* One packet given to the owner counts down active once/N. */
static void active_used(nsock *s) {
  if (s->active == ACT_ONCE) {
    s->active = ACT_OFF;
  } else if (s->active == ACT_N && --s->count <= 0) {
    s->active = ACT_OFF;
    s->count = 0;
    tell(s, s->kind == NS_UDP ? "udp_passive" : "tcp_passive", NULL, 0);
  }
}

/* ================================================================ buffer and framing */

/* An emptied buffer that grew big is let go: idle sockets keep no read buffer. */
void net_consume(nsock *s, size_t n) {
  s->inpos += n;
  if (s->inpos < s->in.len) return;
  s->inpos = s->in.len = 0;
  if (s->in.cap > KEEP_BUF) msg_buf_free(&s->in);
}

/*
** Reads go through a chunk on the stack and only what came is kept, so a socket's buffer
** holds what is pending, not the size of a read; a read for more than a chunk (recv of
** exactly n bytes) goes straight into the buffer.
*/
long net_fill(nsock *s, size_t atleast) {
  unsigned char chunk[READ_CHUNK];
  size_t want = atleast > READ_CHUNK ? atleast : READ_CHUNK;
  unsigned char *into = chunk;
  ssize_t r;
  if (s->inpos > 0 && s->inpos * 2 >= s->in.len) {   /* slide the rest to the front */
    memmove(s->in.p, s->in.p + s->inpos, s->in.len - s->inpos);
    s->in.len -= s->inpos;
    s->inpos = 0;
  }
  if (want > READ_CHUNK) {
    if (msg_buf_reserve(&s->in, want) != 0) return -ENOMEM;
    into = s->in.p + s->in.len;
  }
  do r = read(s->fd, into, want);
  while (r < 0 && errno == EINTR);
  if (r < 0) return errno == EWOULDBLOCK ? -EAGAIN : -errno;
  if (r == 0) s->eof = 1;
  if (into != chunk) s->in.len += (size_t)r;
  else if (r > 0 && msg_buf_add(&s->in, chunk, (size_t)r) != 0) return -ENOMEM;
  return (long)r;
}

static size_t packet_max(const nsock *s) {
  if (s->packet_size) return s->packet_size;
  return s->packet == PK_LINE ? NET_LINE_MAX : NET_PACKET_MAX;
}

int net_packet(nsock *s, size_t want, size_t *start, size_t *len, size_t *consume) {
  const unsigned char *p = s->in.p ? s->in.p + s->inpos : NULL;
  size_t avail = s->in.len - s->inpos, n = 0;
  *start = s->inpos;
  if (avail == 0) return 0;
  switch (s->packet) {
    case PK_RAW:
      if (want && avail < want) return 0;
      *len = *consume = want ? want : avail;
      return 1;
    case PK_LINE: {
      const unsigned char *nl = memchr(p, '\n', avail);
      if (nl == NULL) {
        if (avail > packet_max(s)) return -EMSGSIZE;
        if (!s->eof) return 0;
        *len = *consume = avail;   /* the last line, unterminated */
        return 1;
      }
      if ((size_t)(nl - p) + 1 > packet_max(s)) return -EMSGSIZE;
      *len = *consume = (size_t)(nl - p) + 1;
      return 1;
    }
    default:
      if (avail < (size_t)s->packet) return 0;
      for (int i = 0; i < s->packet; i++) n = (n << 8) | p[i];
      if (n > packet_max(s)) return -EMSGSIZE;
      if (avail < (size_t)s->packet + n) return 0;
      *start = s->inpos + (size_t)s->packet;
      *len = n;
      *consume = (size_t)s->packet + n;
      return 1;
  }
}

/* ================================================================ active mode */

static void tell_closed(nsock *s) {
  if (s->closed_sent) return;
  s->closed_sent = 1;
  tell(s, "tcp_closed", NULL, 0);
}

static void tell_error(nsock *s, int err) {
  const char *e = net_errname(err);
  tell(s, "tcp_error", e, strlen(e));
  tell_closed(s);
  s->eof = 1;
}

/* One datagram to the owner as {"udp", sock, ip, port, data}; 0, or -errno. */
static int pump_udp(nsock *s) {
  struct sockaddr_storage sa;
  socklen_t salen = sizeof sa;
  char ip[INET6_ADDRSTRLEN];
  int port;
  unsigned char dgram[DGRAM_MAX];
  ssize_t r;
  msg_buf b;
  r = recvfrom(s->fd, dgram, sizeof dgram, 0, (struct sockaddr *)&sa, &salen);
  if (r < 0) return errno == EWOULDBLOCK ? -EAGAIN : -errno;
  net_addr_text(&sa, ip, sizeof ip, &port);
  msg_buf_init(&b);
  if (msgb_count(&b, 1) || msgb_table(&b, 5, 0) || msgb_str(&b, "udp", 3) ||
      msgb_socket(&b, s->id) || msgb_str(&b, ip, strlen(ip)) || msgb_int(&b, port) ||
      msgb_str(&b, (const char *)dgram, (size_t)r))
    msg_buf_free(&b);
  deliver(s, s->owner, &b);
  active_used(s);
  return 0;
}

/* Hands whole packets to the owner while the socket stays active; reads more when the
** buffer has none. Bounded, so one busy socket cannot hold the I/O thread. */
void net_pump(nsock *s) {
  size_t start, len, consume;
  for (int round = 0; round < PUMP_ROUNDS && s->active != ACT_OFF && s->fd >= 0; round++) {
    long r;
    if (s->kind == NS_UDP) {
      if (pump_udp(s) < 0) return;
      continue;
    }
    if (s->kind != NS_TCP || s->closed_sent) return;
    r = net_packet(s, 0, &start, &len, &consume);
    if (r == -EMSGSIZE) {
      tell_error(s, EMSGSIZE);
      return;
    }
    if (r == 1) {
      msg_buf b;
      msg_buf_init(&b);
      if (msgb_count(&b, 1) || msgb_table(&b, 3, 0) || msgb_str(&b, "tcp", 3) ||
          msgb_socket(&b, s->id) || msgb_str(&b, (const char *)s->in.p + start, len))
        msg_buf_free(&b);
      net_consume(s, consume);
      deliver(s, s->owner, &b);
      active_used(s);
      continue;
    }
    if (s->eof) {
      tell_closed(s);
      return;
    }
    r = net_fill(s, 0);
    if (r == -EAGAIN) return;
    if (r < 0) {
      tell_error(s, (int)-r);
      return;
    }
  }
}

void net_set_active(nsock *s, int mode, int n) {
  if (mode == ACT_N) {
    s->count = (s->active == ACT_N ? s->count : 0) + n;
    if (s->count <= 0) {
      s->active = ACT_OFF;
      s->count = 0;
      tell(s, s->kind == NS_UDP ? "udp_passive" : "tcp_passive", NULL, 0);
      return;
    }
  }
  s->active = mode;
  if (mode != ACT_OFF) {
    net_pump(s);
    net_arm(s);
  }
}

/* ================================================================ waiting */

void net_arm(nsock *s) {
  struct epoll_event ev = {0};
  int reading = s->kind != NS_LISTEN && s->active != ACT_OFF && !s->eof && !s->closed_sent;
  if (s->fd < 0) return;
  if (s->nrw > 0 || reading) ev.events |= EPOLLIN;
  if (s->ww.ref) ev.events |= EPOLLOUT;
  if (ev.events == 0) return;   /* stays disarmed (one-shot) */
  ev.events |= EPOLLONESHOT;
  ev.data.u64 = s->id;
  epoll_ctl(s->rt->net->epfd, EPOLL_CTL_MOD, s->fd, &ev);
}

int net_wait(nsock *s, int dir, uint64_t pid, uint64_t ref) {
  nwait w = {pid, ref};
  if (s->fd < 0) {
    wake(s, w);
    return 0;
  }
  if (dir == 'w') {
    if (s->ww.ref) wake_writer(s);   /* a stale waiter (its process gave up): let it go */
    s->ww = w;
  } else {
    if (s->nrw == s->caprw) {
      size_t cap = s->caprw ? s->caprw * 2 : 2;
      nwait *v = realloc(s->rw, cap * sizeof *v);
      if (v == NULL) return MB_ENOMEM;
      s->rw = v;
      s->caprw = cap;
    }
    s->rw[s->nrw++] = w;
  }
  net_arm(s);
  return 0;
}

int net_unwait(nsock *s, uint64_t ref) {
  if (s->ww.ref == ref) {
    s->ww.ref = 0;
    return 1;
  }
  for (size_t i = 0; i < s->nrw; i++)
    if (s->rw[i].ref == ref) {
      s->rw[i] = s->rw[--s->nrw];
      return 1;
    }
  return 0;
}

/* ================================================================ closing */

void net_close_locked(nsock *s) {
  struct net *n = s->rt->net;
  size_t i;
  if (s->fd < 0) return;
  epoll_ctl(n->epfd, EPOLL_CTL_DEL, s->fd, NULL);
  close(s->fd);
  s->fd = -1;
  wake_readers(s);
  wake_writer(s);
  msg_buf_free(&s->in);
  s->inpos = 0;
  pthread_mutex_lock(&n->lock);
  if ((i = u64map_find(&n->map, s->id)) != (size_t)-1) u64map_del(&n->map, i);
  pthread_mutex_unlock(&n->lock);
  net_put(s);   /* the table's reference; the caller still holds one */
}

void net_mark_owner(mb_runtime *rt, uint64_t pid) {
  proc *p = proc_lookup(rt, pid);
  if (p == NULL) return;
  atomic_store(&p->net_owner, 1);
  proc_release(p);
}

typedef struct owned {
  uint64_t pid;
  uint64_t *ids;
  size_t n, cap;
} owned;

/* Under the table lock: collect ids (owner is read racily here and checked again). */
static void collect(nsock *s, void *ud) {
  owned *o = ud;
  if (o->n == o->cap) {
    size_t cap = o->cap ? o->cap * 2 : 16;
    uint64_t *v = realloc(o->ids, cap * sizeof *v);
    if (v == NULL) return;
    o->ids = v;
    o->cap = cap;
  }
  o->ids[o->n++] = s->id;
}

/* Close every socket owned by pid (all of them if pid is 0). */
static void close_owned(mb_runtime *rt, uint64_t pid) {
  owned o = {pid, NULL, 0, 0};
  net_each(rt, collect, &o);
  for (size_t i = 0; i < o.n; i++) {
    nsock *s = net_get(rt, o.ids[i]);
    if (s == NULL) continue;
    pthread_mutex_lock(&s->lock);
    if (pid == 0 || s->owner == pid) net_close_locked(s);
    pthread_mutex_unlock(&s->lock);
    net_put(s);
  }
  free(o.ids);
}

void net_proc_ended(mb_runtime *rt, uint64_t pid) {
  close_owned(rt, pid);
}

/* ================================================================ the I/O thread */

static void on_event(nsock *s, uint32_t ev) {
  if (ev & (EPOLLIN | EPOLLERR | EPOLLHUP | EPOLLRDHUP)) {
    wake_readers(s);
    if (s->active != ACT_OFF) net_pump(s);
  }
  if (ev & (EPOLLOUT | EPOLLERR | EPOLLHUP)) wake_writer(s);
  net_arm(s);
}

static void *io_main(void *arg) {
  mb_runtime *rt = arg;
  struct net *n = rt->net;
  struct epoll_event evs[EV_BATCH];
  while (!atomic_load(&n->stop)) {
    int k = epoll_wait(n->epfd, evs, EV_BATCH, -1);
    for (int i = 0; i < k; i++) {
      nsock *s;
      if (evs[i].data.u64 == 0) continue;   /* the eventfd: look at stop */
      if ((s = net_get(rt, evs[i].data.u64)) == NULL) continue;
      pthread_mutex_lock(&s->lock);
      if (s->fd >= 0) on_event(s, evs[i].events);
      pthread_mutex_unlock(&s->lock);
      net_put(s);
    }
  }
  return NULL;
}

int net_start(mb_runtime *rt) {
  struct net *n = rt->net;
  struct epoll_event ev = {0};
  int st = MB_ENOMEM;
  if ((n->epfd = epoll_create1(EPOLL_CLOEXEC)) < 0) goto fail;
  if ((n->evfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0) goto fail_ep;
  ev.events = EPOLLIN;
  ev.data.u64 = 0;
  if (epoll_ctl(n->epfd, EPOLL_CTL_ADD, n->evfd, &ev) != 0) goto fail_ev;
  if (pthread_create(&n->thread, NULL, io_main, rt) != 0) {
    st = MB_ETHREAD;
    goto fail_ev;
  }
  n->started = 1;
  return 0;
fail_ev:
  close(n->evfd);
  n->evfd = -1;
fail_ep:
  close(n->epfd);
  n->epfd = -1;
fail:
  return st;
}

void net_stop(mb_runtime *rt) {
  struct net *n = rt->net;
  uint64_t one = 1;
  if (n == NULL) return;
  pthread_mutex_lock(&n->lock);
  while (n->nresolving > 0) pthread_cond_wait(&n->cond, &n->lock);
  pthread_mutex_unlock(&n->lock);
  if (n->started) {
    atomic_store(&n->stop, 1);
    if (write(n->evfd, &one, sizeof one) < 0) {}
    pthread_join(n->thread, NULL);
    n->started = 0;
  }
  close_owned(rt, 0);
}

void net_free(mb_runtime *rt) {
  struct net *n = rt->net;
  if (n == NULL) return;
  net_stop(rt);
  if (n->evfd >= 0) close(n->evfd);
  if (n->epfd >= 0) close(n->epfd);
  u64map_free(&n->map);
  pthread_cond_destroy(&n->cond);
  pthread_mutex_destroy(&n->lock);
  free(n);
  rt->net = NULL;
}

/* ================================================================ name lookup */

typedef struct lookup {
  mb_runtime *rt;
  uint64_t pid, ref;
  char host[];
} lookup;

/* A resolver thread: getaddrinfo blocks, so it runs here and answers by message. */
static void *resolve_main(void *arg) {
  lookup *q = arg;
  struct net *n = q->rt->net;
  struct addrinfo hints = {0}, *res = NULL;
  char ip[INET6_ADDRSTRLEN] = "";
  int port, rc;
  msg_buf b;
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  rc = getaddrinfo(q->host, NULL, &hints, &res);
  if (rc == 0 && res) {
    struct addrinfo *a = res;
    for (; a && a->ai_family != AF_INET; a = a->ai_next) {}   /* IPv4 first */
    if (a == NULL) a = res;
    net_addr_text((const struct sockaddr_storage *)a->ai_addr, ip, sizeof ip, &port);
  }
  if (res) freeaddrinfo(res);
  msg_buf_init(&b);
  if (msgb_count(&b, 1) || msgb_table(&b, ip[0] ? 2 : 3, 0) || msgb_term(&b, q->ref) ||
      (ip[0] ? msgb_str(&b, ip, strlen(ip))
             : (msgb_bool(&b, 0) || msgb_str(&b, "nxdomain", 8))))
    msg_buf_free(&b);
  if (b.p) {   /* to the alias ref: dropped if the asker gave up (unaliased) meanwhile */
    mbox_item *m = mbox_item_new(SIG_MSG, 0, q->ref, b.p, b.len);
    if (m) m->flags |= MBOX_ALIAS;
    proc_deliver(q->rt, q->pid, m);
  }
  msg_buf_free(&b);
  pthread_mutex_lock(&n->lock);
  if (--n->nresolving == 0) pthread_cond_broadcast(&n->cond);
  pthread_mutex_unlock(&n->lock);
  free(q);
  return NULL;
}

int net_resolve(mb_runtime *rt, const char *host, uint64_t pid, uint64_t ref) {
  struct net *n = rt->net;
  size_t len = strlen(host);
  lookup *q = malloc(sizeof *q + len + 1);
  pthread_attr_t attr;
  pthread_t t;
  int st;
  if (q == NULL) return MB_ENOMEM;
  q->rt = rt;
  q->pid = pid;
  q->ref = ref;
  memcpy(q->host, host, len + 1);
  pthread_mutex_lock(&n->lock);
  n->nresolving++;
  pthread_mutex_unlock(&n->lock);
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  st = pthread_create(&t, &attr, resolve_main, q);
  pthread_attr_destroy(&attr);
  if (st != 0) {
    pthread_mutex_lock(&n->lock);
    if (--n->nresolving == 0) pthread_cond_broadcast(&n->cond);
    pthread_mutex_unlock(&n->lock);
    free(q);
    return MB_ENOMEM;
  }
  return 0;
}
