/* lnet.c — `net.core`: socket handles and the non-blocking socket calls (see lnet.h). */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>

#include "lnet.h"
#include "lproc.h"
#include "net.h"
#include "pid.h"
#include "proc.h"

#define SOCK_MT "moonbeam.socket"
#define SOCK_CACHE "moonbeam.sockets"

typedef struct sockud {
  uint64_t id;
} sockud;

/* ================================================================ handles */

int lnet_socket_id(lua_State *L, int idx, uint64_t *id) {
  sockud *u = lua_touserdata(L, idx);
  int is;
  if (u == NULL || lua_type(L, idx) != LUA_TUSERDATA || !lua_getmetatable(L, idx)) return 0;
  luaL_getmetatable(L, SOCK_MT);
  is = lua_rawequal(L, -1, -2);
  lua_pop(L, 2);
  if (is) *id = u->id;
  return is;
}

static int sock_tostring(lua_State *L) {
  sockud *u = luaL_checkudata(L, 1, SOCK_MT);
  lua_pushfstring(L, "#Port<0.%I>", (lua_Integer)u->id);
  return 1;
}

/* The metatable and the weak cache; 1 if they were made now. */
static int open_handles(lua_State *L) {
  if (!luaL_newmetatable(L, SOCK_MT)) {
    lua_pop(L, 1);
    return 0;
  }
  lua_pushliteral(L, "socket");
  lua_setfield(L, -2, "__name");
  lua_pushcfunction(L, sock_tostring);
  lua_setfield(L, -2, "__tostring");
  lua_pop(L, 1);
  lua_newtable(L);
  lua_createtable(L, 0, 1);
  lua_pushliteral(L, "v");
  lua_setfield(L, -2, "__mode");
  lua_setmetatable(L, -2);
  lua_setfield(L, LUA_REGISTRYINDEX, SOCK_CACHE);
  return 1;
}

static void push_handle(lua_State *L, uint64_t id) {
  lua_getfield(L, LUA_REGISTRYINDEX, SOCK_CACHE);
  if (lua_rawgeti(L, -1, (lua_Integer)id) == LUA_TUSERDATA) {
    lua_remove(L, -2);
    return;
  }
  lua_pop(L, 1);
  sockud *u = lua_newuserdatauv(L, sizeof *u, 0);
  u->id = id;
  luaL_setmetatable(L, SOCK_MT);
  lua_pushvalue(L, -1);
  lua_rawseti(L, -3, (lua_Integer)id);
  lua_remove(L, -2);
}

void lnet_push_socket(lua_State *L, uint64_t id) {
  luaL_checkstack(L, 4, "message too complex");
  if (luaL_getmetatable(L, SOCK_MT) == LUA_TNIL) {   /* net.lua gives handles their methods */
    lua_getglobal(L, "require");
    lua_pushliteral(L, "net");
    lua_call(L, 1, 0);
  }
  lua_pop(L, 1);
  push_handle(L, id);
}

static uint64_t checksock(lua_State *L, int i) {
  uint64_t id;
  if (!lnet_socket_id(L, i, &id)) luaL_typeerror(L, i, "socket");
  return id;
}

/* ================================================================ results */

static int fail(lua_State *L, const char *reason) {
  lua_pushnil(L);
  lua_pushstring(L, reason);
  return 2;
}

static int fail_errno(lua_State *L, int err) { return fail(L, net_errname(err)); }

static int ok(lua_State *L) {
  lua_pushboolean(L, 1);
  return 1;
}

static uint64_t self_pid(lua_State *L) { return proc_of(L)->pid; }
static mb_runtime *runtime(lua_State *L) { return proc_of(L)->rt; }

/*
** The socket at argument 1, locked and referenced, or NULL with *why set: "closed" if it is
** not open, "not_owner" when owner is asked for and the caller is not it.
*/
static nsock *lock_sock(lua_State *L, int owner, const char **why) {
  nsock *s = net_get(runtime(L), checksock(L, 1));
  if (s == NULL) {
    *why = "closed";
    return NULL;
  }
  pthread_mutex_lock(&s->lock);
  if (s->fd < 0 || (owner && s->owner != self_pid(L))) {
    *why = s->fd < 0 ? "closed" : "not_owner";
    pthread_mutex_unlock(&s->lock);
    net_put(s);
    return NULL;
  }
  return s;
}

static void unlock_sock(nsock *s) {
  pthread_mutex_unlock(&s->lock);
  net_put(s);
}

typedef struct bytes {
  const char *p;
  size_t n;
} bytes;

static int push_bytes(lua_State *L) {
  bytes *b = lua_touserdata(L, 1);
  lua_pushlstring(L, b->p, b->n);
  return 1;
}

/* Push a string while a socket lock is held: protected, so that a failed allocation (say,
** past max_heap) cannot unwind with the lock still held. LUA_OK, or the error is on top. */
static int push_locked(lua_State *L, const char *p, size_t n) {
  bytes b = {p, n};
  lua_pushcfunction(L, push_bytes);
  lua_pushlightuserdata(L, &b);
  return lua_pcall(L, 1, 1, 0);
}

/* ================================================================ addresses */

static int parse_addr(const char *ip, int port, struct sockaddr_storage *ss, socklen_t *len) {
  memset(ss, 0, sizeof *ss);
  if (port < 0 || port > 65535) return -1;
  struct sockaddr_in *a = (struct sockaddr_in *)ss;
  struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;
  if (inet_pton(AF_INET, ip, &a->sin_addr) == 1) {
    a->sin_family = AF_INET;
    a->sin_port = htons((uint16_t)port);
    *len = sizeof *a;
    return 0;
  }
  if (inet_pton(AF_INET6, ip, &a6->sin6_addr) == 1) {
    a6->sin6_family = AF_INET6;
    a6->sin6_port = htons((uint16_t)port);
    *len = sizeof *a6;
    return 0;
  }
  return -1;
}

static int push_addr(lua_State *L, const struct sockaddr_storage *ss) {
  char ip[INET6_ADDRSTRLEN];
  int port;
  net_addr_text(ss, ip, sizeof ip, &port);
  lua_pushstring(L, ip);
  lua_pushinteger(L, port);
  return 2;
}

/* A new non-blocking socket bound to ip:port (with reuseaddr); fd, or -errno. */
static int bound_socket(const char *ip, int port, int type, int reuse) {
  struct sockaddr_storage ss;
  socklen_t len;
  int fd, err;
  if (parse_addr(ip, port, &ss, &len) != 0) return -EINVAL;
  fd = socket(ss.ss_family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  if (reuse) setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &reuse, sizeof reuse);
  if (bind(fd, (struct sockaddr *)&ss, len) != 0) {
    err = errno;
    close(fd);
    return -err;
  }
  return fd;
}

static int push_new(lua_State *L, int fd, int kind) {
  nsock *s;
  if (fd < 0) return fail_errno(L, -fd);
  if ((s = net_add(runtime(L), fd, kind, self_pid(L))) == NULL) return fail(L, "enomem");
  push_handle(L, s->id);
  net_put(s);
  return 1;
}

/* core.listen(ip, port, backlog, reuseaddr) -> sock | nil, err */
static int l_listen(lua_State *L) {
  const char *ip = luaL_checkstring(L, 1);
  int port = (int)luaL_checkinteger(L, 2), backlog = (int)luaL_checkinteger(L, 3);
  int fd = bound_socket(ip, port, SOCK_STREAM, lua_toboolean(L, 4));
  if (fd >= 0 && listen(fd, backlog) != 0) {
    int err = errno;
    close(fd);
    fd = -err;
  }
  return push_new(L, fd, NS_LISTEN);
}

/* core.udp_open(ip, port, reuseaddr) -> sock | nil, err */
static int l_udp_open(lua_State *L) {
  return push_new(L, bound_socket(luaL_checkstring(L, 1), (int)luaL_checkinteger(L, 2),
                                  SOCK_DGRAM, lua_toboolean(L, 3)), NS_UDP);
}

/* core.connect(ip, port) -> sock, in_progress | nil, err */
static int l_connect(lua_State *L) {
  struct sockaddr_storage ss;
  socklen_t len;
  nsock *s;
  int fd, inprogress = 0;
  if (parse_addr(luaL_checkstring(L, 1), (int)luaL_checkinteger(L, 2), &ss, &len) != 0)
    return fail(L, "einval");
  if ((fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) < 0)
    return fail_errno(L, errno);
  if (connect(fd, (struct sockaddr *)&ss, len) != 0) {
    int err = errno;
    if (err != EINPROGRESS) {
      close(fd);
      return fail_errno(L, err);
    }
    inprogress = 1;
  }
  if ((s = net_add(runtime(L), fd, NS_TCP, self_pid(L))) == NULL) return fail(L, "enomem");
  push_handle(L, s->id);
  net_put(s);
  lua_pushboolean(L, inprogress);
  return 2;
}

/* core.connect_result(sock) -> true | nil, err: how the connect under way ended. */
static int l_connect_result(lua_State *L) {
  const char *why;
  int err = 0;
  socklen_t len = sizeof err;
  nsock *s = lock_sock(L, 1, &why);
  if (s == NULL) return fail(L, why);
  if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
  unlock_sock(s);
  return err ? fail_errno(L, err) : ok(L);
}

/* ================================================================ options */

static void set_int(int fd, int level, int name, int v) {
  setsockopt(fd, level, name, &v, sizeof v);
}

static int get_int(int fd, int level, int name) {
  int v = 0;
  socklen_t len = sizeof v;
  getsockopt(fd, level, name, &v, &len);
  return v;
}

/* Kernel options remembered in s, applied to fd (a new accepted socket's too). */
static void apply_kernel(const nsock *s, int fd) {
  if (s->nodelay >= 0) set_int(fd, IPPROTO_TCP, TCP_NODELAY, s->nodelay);
  if (s->keepalive >= 0) set_int(fd, SOL_SOCKET, SO_KEEPALIVE, s->keepalive);
  if (s->recbuf > 0) set_int(fd, SOL_SOCKET, SO_RCVBUF, s->recbuf);
  if (s->sndbuf > 0) set_int(fd, SOL_SOCKET, SO_SNDBUF, s->sndbuf);
}

/* The value at idx as an active mode: ACT_* and the count for ACT_N. */
static int active_mode(lua_State *L, int idx, int *n) {
  *n = 0;
  if (lua_isboolean(L, idx)) return lua_toboolean(L, idx) ? ACT_ON : ACT_OFF;
  if (lua_type(L, idx) == LUA_TSTRING) return ACT_ONCE;
  *n = (int)lua_tointeger(L, idx);
  return ACT_N;
}

/* core.setopt(sock, name, value) -> true | nil, err (names and values checked by net.lua) */
static int l_setopt(lua_State *L) {
  const char *why, *name = luaL_checkstring(L, 2);
  nsock *s = lock_sock(L, 1, &why);
  int v = lua_isinteger(L, 3) ? (int)lua_tointeger(L, 3) : lua_toboolean(L, 3);
  if (s == NULL) return fail(L, why);
  if (strcmp(name, "active") == 0) {
    int n, mode = active_mode(L, 3, &n);
    net_set_active(s, mode, n);
  } else if (strcmp(name, "packet") == 0) {
    if (lua_type(L, 3) == LUA_TSTRING)
      s->packet = strcmp(lua_tostring(L, 3), "line") == 0 ? PK_LINE : PK_RAW;
    else
      s->packet = v;
  } else if (strcmp(name, "packet_size") == 0) {
    s->packet_size = (size_t)v;
  } else if (strcmp(name, "nodelay") == 0) {
    s->nodelay = v;
  } else if (strcmp(name, "keepalive") == 0) {
    s->keepalive = v;
  } else if (strcmp(name, "recbuf") == 0) {
    s->recbuf = v;
  } else if (strcmp(name, "sndbuf") == 0) {
    s->sndbuf = v;
  } else if (strcmp(name, "reuseaddr") == 0) {
    set_int(s->fd, SOL_SOCKET, SO_REUSEADDR, v);
  } else if (strcmp(name, "broadcast") == 0) {
    set_int(s->fd, SOL_SOCKET, SO_BROADCAST, v);
  } else if (strcmp(name, "linger") == 0) {
    struct linger lg = {v >= 0, v >= 0 ? v : 0};
    setsockopt(s->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  }
  if (s->kind != NS_UDP || strcmp(name, "nodelay") != 0) apply_kernel(s, s->fd);
  unlock_sock(s);
  return ok(L);
}

/* An option's value, read under the socket lock and pushed after it is released. */
typedef struct optval {
  enum { OV_NIL, OV_BOOL, OV_INT, OV_STR } type;
  lua_Integer i;
  const char *str;
} optval;

static optval read_opt(nsock *s, const char *name) {
  optval v = {OV_NIL, 0, NULL};
  if (strcmp(name, "active") == 0) {
    if (s->active == ACT_N) v = (optval){OV_INT, s->count, NULL};
    else if (s->active == ACT_ONCE) v = (optval){OV_STR, 0, "once"};
    else v = (optval){OV_BOOL, s->active == ACT_ON, NULL};
  } else if (strcmp(name, "packet") == 0) {
    if (s->packet == PK_LINE) v = (optval){OV_STR, 0, "line"};
    else if (s->packet == PK_RAW) v = (optval){OV_STR, 0, "raw"};
    else v = (optval){OV_INT, s->packet, NULL};
  } else if (strcmp(name, "packet_size") == 0) {
    v = (optval){OV_INT, (lua_Integer)(s->packet_size ? s->packet_size
                                       : s->packet == PK_LINE ? NET_LINE_MAX : NET_PACKET_MAX),
                 NULL};
  } else if (strcmp(name, "nodelay") == 0) {
    v = (optval){OV_BOOL, s->kind != NS_UDP && get_int(s->fd, IPPROTO_TCP, TCP_NODELAY), NULL};
  } else if (strcmp(name, "keepalive") == 0) {
    v = (optval){OV_BOOL, get_int(s->fd, SOL_SOCKET, SO_KEEPALIVE), NULL};
  } else if (strcmp(name, "reuseaddr") == 0) {
    v = (optval){OV_BOOL, get_int(s->fd, SOL_SOCKET, SO_REUSEADDR), NULL};
  } else if (strcmp(name, "broadcast") == 0) {
    v = (optval){OV_BOOL, get_int(s->fd, SOL_SOCKET, SO_BROADCAST), NULL};
  } else if (strcmp(name, "recbuf") == 0) {
    v = (optval){OV_INT, get_int(s->fd, SOL_SOCKET, SO_RCVBUF), NULL};
  } else if (strcmp(name, "sndbuf") == 0) {
    v = (optval){OV_INT, get_int(s->fd, SOL_SOCKET, SO_SNDBUF), NULL};
  } else if (strcmp(name, "linger") == 0) {
    struct linger lg = {0, 0};
    socklen_t len = sizeof lg;
    getsockopt(s->fd, SOL_SOCKET, SO_LINGER, &lg, &len);
    v = lg.l_onoff ? (optval){OV_INT, lg.l_linger, NULL} : (optval){OV_BOOL, 0, NULL};
  }
  return v;
}

/* core.getopt(sock, name) -> value | nil, err */
static int l_getopt(lua_State *L) {
  const char *why, *name = luaL_checkstring(L, 2);
  nsock *s = lock_sock(L, 0, &why);
  optval v;
  if (s == NULL) return fail(L, why);
  v = read_opt(s, name);
  unlock_sock(s);
  switch (v.type) {
    case OV_BOOL: lua_pushboolean(L, (int)v.i); break;
    case OV_INT: lua_pushinteger(L, v.i); break;
    case OV_STR: lua_pushstring(L, v.str); break;
    default: lua_pushnil(L); break;
  }
  return 1;
}

/* ================================================================ TCP */

/* What a new accepted socket takes from its listener. */
typedef struct inherit {
  int active, count, packet, nodelay, keepalive, recbuf, sndbuf;
  size_t packet_size;
} inherit;

/* core.accept(lsock) -> sock | nil, err ("wouldblock" when none is waiting) */
static int l_accept(lua_State *L) {
  const char *why;
  struct sockaddr_storage sa;
  socklen_t salen = sizeof sa;
  nsock *s = lock_sock(L, 0, &why), *c;
  inherit in;
  int fd;
  if (s == NULL) return fail(L, why);
  if (s->kind != NS_LISTEN) {
    unlock_sock(s);
    return fail(L, "einval");
  }
  do fd = accept4(s->fd, (struct sockaddr *)&sa, &salen, SOCK_NONBLOCK | SOCK_CLOEXEC);
  while (fd < 0 && (errno == EINTR || errno == ECONNABORTED));
  in = (inherit){s->active, s->count, s->packet, s->nodelay, s->keepalive, s->recbuf,
                 s->sndbuf, s->packet_size};
  if (fd >= 0) apply_kernel(s, fd);
  unlock_sock(s);
  if (fd < 0) return fail_errno(L, errno == EWOULDBLOCK ? EAGAIN : errno);
  if ((c = net_add(runtime(L), fd, NS_TCP, self_pid(L))) == NULL) return fail(L, "enomem");
  pthread_mutex_lock(&c->lock);
  c->packet = in.packet;
  c->packet_size = in.packet_size;
  c->nodelay = in.nodelay;
  c->keepalive = in.keepalive;
  c->recbuf = in.recbuf;
  c->sndbuf = in.sndbuf;
  if (in.active != ACT_OFF) net_set_active(c, in.active, in.count);
  pthread_mutex_unlock(&c->lock);
  push_handle(L, c->id);
  net_put(c);
  return 1;
}

/* core.recv(sock, n) -> data | nil, err ("wouldblock": nothing yet) */
static int l_recv(lua_State *L) {
  const char *why;
  lua_Integer want = luaL_optinteger(L, 2, 0);
  nsock *s;
  luaL_checkstack(L, 4, NULL);
  s = lock_sock(L, 1, &why);
  size_t start, len, consume;
  if (s == NULL) return fail(L, why);
  if (s->kind != NS_TCP || s->active != ACT_OFF || (want > 0 && s->packet != PK_RAW)) {
    unlock_sock(s);
    return fail(L, "einval");
  }
  for (;;) {
    long r = net_packet(s, (size_t)want, &start, &len, &consume);
    if (r == 1) {
      int st = push_locked(L, (const char *)s->in.p + start, len);
      if (st == LUA_OK) net_consume(s, consume);
      unlock_sock(s);
      return st == LUA_OK ? 1 : lua_error(L);
    }
    if (r < 0 || s->eof) break;
    r = net_fill(s, want > 0 ? (size_t)want - (s->in.len - s->inpos) : 0);
    if (r < 0) {
      unlock_sock(s);
      return fail_errno(L, (int)-r);
    }
  }
  why = s->eof ? "closed" : "emsgsize";
  unlock_sock(s);
  return fail(L, why);
}

/*
** core.write(sock, data, pos) -> pos, done: writes from byte pos of the framed data (the
** length prefix of packet 1/2/4, then data) as far as the kernel takes it; done when all
** of it went. nil, err on failure ("emsgsize": too long for the prefix).
*/
static int l_write(lua_State *L) {
  const char *why;
  size_t len;
  const char *data = luaL_checklstring(L, 2, &len);
  size_t pos = (size_t)luaL_checkinteger(L, 3), h = 0, total;
  unsigned char hdr[4];
  nsock *s = lock_sock(L, 1, &why);
  int err = 0;
  if (s == NULL) return fail(L, why);
  if (s->kind != NS_TCP) err = EINVAL;
  else if (s->packet >= PK_1 && s->packet <= PK_4) {
    h = (size_t)s->packet;
    if (h < 4 && len >> (8 * h) != 0) err = EMSGSIZE;
    for (size_t i = 0; i < h; i++) hdr[i] = (unsigned char)(len >> (8 * (h - 1 - i)));
  }
  total = h + len;
  while (err == 0 && pos < total) {
    struct iovec iov[2];
    struct msghdr mh = {0};
    ssize_t n;
    int k = 0;
    if (pos < h) iov[k++] = (struct iovec){hdr + pos, h - pos};
    iov[k].iov_base = (void *)(data + (pos > h ? pos - h : 0));
    iov[k++].iov_len = len - (pos > h ? pos - h : 0);
    mh.msg_iov = iov;
    mh.msg_iovlen = (size_t)k;
    n = sendmsg(s->fd, &mh, MSG_NOSIGNAL);
    if (n >= 0) pos += (size_t)n;
    else if (errno != EINTR) err = errno;
  }
  unlock_sock(s);
  if (err && err != EAGAIN && err != EWOULDBLOCK)
    return fail_errno(L, err == ENOTCONN ? EPIPE : err);
  lua_pushinteger(L, (lua_Integer)pos);
  lua_pushboolean(L, pos >= total);
  return 2;
}

/* core.shutdown(sock, how) -> true | nil, err */
static int l_shutdown(lua_State *L) {
  static const char *const hows[] = {"read", "write", "read_write", NULL};
  static const int flags[] = {SHUT_RD, SHUT_WR, SHUT_RDWR};
  int how = flags[luaL_checkoption(L, 2, NULL, hows)], r, err;
  const char *why;
  nsock *s = lock_sock(L, 1, &why);
  if (s == NULL) return fail(L, why);
  r = shutdown(s->fd, how);
  err = errno;
  unlock_sock(s);
  return r == 0 ? ok(L) : fail_errno(L, err);
}

/* core.close(sock) -> true | nil, "not_owner" */
static int l_close(lua_State *L) {
  const char *why;
  nsock *s = lock_sock(L, 1, &why);
  if (s == NULL) {
    if (strcmp(why, "closed") == 0) return ok(L);
    return fail(L, why);
  }
  net_close_locked(s);
  unlock_sock(s);
  return ok(L);
}

static int names(lua_State *L, int peer) {
  const char *why;
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  nsock *s = lock_sock(L, 0, &why);
  int r, err;
  if (s == NULL) return fail(L, why);
  memset(&ss, 0, sizeof ss);
  r = peer ? getpeername(s->fd, (struct sockaddr *)&ss, &len)
           : getsockname(s->fd, (struct sockaddr *)&ss, &len);
  err = errno;
  unlock_sock(s);
  return r == 0 ? push_addr(L, &ss) : fail_errno(L, err);
}

static int l_peername(lua_State *L) { return names(L, 1); }
static int l_sockname(lua_State *L) { return names(L, 0); }

/* ================================================================ UDP */

/* core.recvfrom(sock) -> data, ip, port | nil, err */
static int l_recvfrom(lua_State *L) {
  const char *why;
  struct sockaddr_storage sa;
  socklen_t salen = sizeof sa;
  nsock *s = lock_sock(L, 1, &why);
  unsigned char dgram[65536];
  ssize_t r;
  if (s == NULL) return fail(L, why);
  if (s->kind != NS_UDP || s->active != ACT_OFF) {
    unlock_sock(s);
    return fail(L, "einval");
  }
  do r = recvfrom(s->fd, dgram, sizeof dgram, 0, (struct sockaddr *)&sa, &salen);
  while (r < 0 && errno == EINTR);
  if (r < 0) {
    int err = errno == EWOULDBLOCK ? EAGAIN : errno;
    unlock_sock(s);
    return fail_errno(L, err);
  }
  unlock_sock(s);
  lua_pushlstring(L, (const char *)dgram, (size_t)r);
  push_addr(L, &sa);
  return 3;
}

/* core.sendto(sock, ip, port, data) -> true | nil, err */
static int l_sendto(lua_State *L) {
  const char *why;
  struct sockaddr_storage ss;
  socklen_t salen;
  size_t len;
  const char *data = luaL_checklstring(L, 4, &len);
  nsock *s;
  ssize_t r;
  int err;
  if (parse_addr(luaL_checkstring(L, 2), (int)luaL_checkinteger(L, 3), &ss, &salen) != 0)
    return fail(L, "einval");
  if ((s = lock_sock(L, 1, &why)) == NULL) return fail(L, why);
  if (s->kind != NS_UDP) {
    unlock_sock(s);
    return fail(L, "einval");
  }
  do r = sendto(s->fd, data, len, MSG_NOSIGNAL, (struct sockaddr *)&ss, salen);
  while (r < 0 && errno == EINTR);
  err = errno == EWOULDBLOCK ? EAGAIN : errno;
  unlock_sock(s);
  return r >= 0 ? ok(L) : fail_errno(L, err);
}

/* ================================================================ waiting and owners */

/* core.wait(sock, "r" | "w", ref) -> true | nil, err: {ref} comes when it is ready. */
static int l_wait(lua_State *L) {
  const char *why, *dir = luaL_checkstring(L, 2);
  uint64_t ref = (uint64_t)(uintptr_t)lua_touserdata(L, 3);
  nsock *s;
  int st;
  luaL_argcheck(L, term_isref(ref), 3, "ref expected");
  if ((s = lock_sock(L, 0, &why)) == NULL) return fail(L, why);
  st = net_wait(s, dir[0], self_pid(L), ref);
  unlock_sock(s);
  return st == 0 ? ok(L) : fail(L, "enomem");
}

/* core.unwait(sock, ref) -> true if the wait was still registered (no message will come) */
static int l_unwait(lua_State *L) {
  uint64_t ref = (uint64_t)(uintptr_t)lua_touserdata(L, 2);
  nsock *s = net_get(runtime(L), checksock(L, 1));
  int was = 0;
  if (s == NULL) {
    lua_pushboolean(L, 0);
    return 1;
  }
  pthread_mutex_lock(&s->lock);
  was = net_unwait(s, ref);
  unlock_sock(s);
  lua_pushboolean(L, was);
  return 1;
}

/* A live Lua process (a host mailbox cannot own a socket: it has no Lua state to use it
** with, and its end does not close sockets). */
static int pid_alive(mb_runtime *rt, uint64_t pid) {
  proc *p = proc_lookup(rt, pid);
  int alive = p && p->host == NULL && atomic_load(&p->state) != P_EXITING;
  if (p) proc_release(p);
  return alive;
}

/*
** core.controlling_process(sock, pid, active) -> true | nil, err. The new owner is marked
** before it is set, and looked up again after: if it died meanwhile, either its death
** saw the socket as its own or this call sees it dead, and the socket closes.
*/
static int l_controlling_process(lua_State *L) {
  const char *why;
  uint64_t pid = (uint64_t)(uintptr_t)lua_touserdata(L, 2), id = checksock(L, 1);
  mb_runtime *rt = runtime(L);
  nsock *s;
  luaL_argcheck(L, term_ispid(pid), 2, "pid expected");
  if ((s = lock_sock(L, 1, &why)) == NULL) return fail(L, why);
  if (!pid_alive(rt, pid)) {
    unlock_sock(s);
    return fail(L, "noproc");
  }
  net_mark_owner(rt, pid);
  s->owner = pid;
  if (!lua_isnoneornil(L, 3)) {
    int n, mode = active_mode(L, 3, &n);
    net_set_active(s, mode, n);
  }
  unlock_sock(s);
  if (!pid_alive(rt, pid) && (s = net_get(rt, id)) != NULL) {
    pthread_mutex_lock(&s->lock);
    if (s->owner == pid) net_close_locked(s);
    unlock_sock(s);
  }
  return ok(L);
}

typedef struct idlist {
  uint64_t *v;
  size_t n, cap;
} idlist;

static void collect_id(nsock *s, void *ud) {
  idlist *l = ud;
  if (l->n == l->cap) {
    size_t cap = l->cap ? l->cap * 2 : 16;
    uint64_t *v = realloc(l->v, cap * sizeof *v);
    if (v == NULL) return;
    l->v = v;
    l->cap = cap;
  }
  l->v[l->n++] = s->id;
}

/* Protected half of core.sockets: the ids in l that the caller owns, as handles. */
static int owned_handles(lua_State *L) {
  idlist *l = lua_touserdata(L, 1);
  uint64_t me = self_pid(L);
  lua_Integer k = 0;
  lua_newtable(L);
  for (size_t i = 0; i < l->n; i++) {
    nsock *s = net_get(runtime(L), l->v[i]);
    int mine;
    if (s == NULL) continue;
    pthread_mutex_lock(&s->lock);
    mine = s->fd >= 0 && s->owner == me;
    pthread_mutex_unlock(&s->lock);
    net_put(s);
    if (!mine) continue;
    push_handle(L, l->v[i]);
    lua_rawseti(L, -2, ++k);
  }
  return 1;
}

/* core.sockets() -> the caller's sockets, oldest first */
static int l_sockets(lua_State *L) {
  idlist l = {NULL, 0, 0};
  int st;
  net_each(runtime(L), collect_id, &l);
  for (size_t i = 1; i < l.n; i++)   /* insertion sort by id: the table is a hash */
    for (size_t j = i; j > 0 && l.v[j - 1] > l.v[j]; j--) {
      uint64_t t = l.v[j];
      l.v[j] = l.v[j - 1];
      l.v[j - 1] = t;
    }
  lua_pushcfunction(L, owned_handles);
  lua_pushlightuserdata(L, &l);
  st = lua_pcall(L, 1, 1, 0);
  free(l.v);
  if (st != LUA_OK) return lua_error(L);
  return 1;
}

static int l_is_socket(lua_State *L) {
  uint64_t id;
  lua_pushboolean(L, lnet_socket_id(L, 1, &id));
  return 1;
}

/* core.resolve(host, ref) -> true: {ref, ip} or {ref, false, reason} comes later */
static int l_resolve(lua_State *L) {
  const char *host = luaL_checkstring(L, 1);
  uint64_t ref = (uint64_t)(uintptr_t)lua_touserdata(L, 2);
  luaL_argcheck(L, term_isref(ref), 2, "ref expected");
  if (net_resolve(runtime(L), host, self_pid(L), ref) != 0) return fail(L, "enomem");
  return ok(L);
}

/* core.kind(sock) -> "tcp" | "listen" | "udp" | nil, "closed" */
static int l_kind(lua_State *L) {
  static const char *const kinds[] = {"tcp", "listen", "udp"};
  const char *why;
  nsock *s = lock_sock(L, 0, &why);
  int kind;
  if (s == NULL) return fail(L, why);
  kind = s->kind;
  unlock_sock(s);
  lua_pushstring(L, kinds[kind]);
  return 1;
}

int luaopen_net_core(lua_State *L) {
  static const luaL_Reg fns[] = {
    {"listen", l_listen}, {"udp_open", l_udp_open}, {"connect", l_connect},
    {"connect_result", l_connect_result}, {"accept", l_accept}, {"recv", l_recv},
    {"write", l_write}, {"shutdown", l_shutdown}, {"close", l_close},
    {"peername", l_peername}, {"sockname", l_sockname}, {"recvfrom", l_recvfrom},
    {"sendto", l_sendto}, {"setopt", l_setopt}, {"getopt", l_getopt}, {"wait", l_wait},
    {"unwait", l_unwait}, {"controlling_process", l_controlling_process},
    {"sockets", l_sockets}, {"is_socket", l_is_socket}, {"resolve", l_resolve},
    {"kind", l_kind}, {NULL, NULL}};
  open_handles(L);
  luaL_newlib(L, fns);
  luaL_getmetatable(L, SOCK_MT);
  lua_setfield(L, -2, "metatable");
  return 1;
}
