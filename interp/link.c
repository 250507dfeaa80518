/* link.c — signals: links, monitors, exit signals and info requests, acted on by the target. */
#include <stdlib.h>
#include <string.h>

#include <lua.h>

#include "code.h"
#include "link.h"
#include "msg.h"
#include "pid.h"
#include "proc.h"
#include "reg.h"
#include "rt.h"

#define NODE_NAME "nonode@nohost"

/* ================================================================ sets */

static int pidset_has(const pidset *s, uint64_t pid) {
  for (size_t i = 0; i < s->n; i++)
    if (s->v[i] == pid) return 1;
  return 0;
}

static int pidset_add(pidset *s, uint64_t pid) {
  if (pidset_has(s, pid)) return 0;
  if (s->n == s->cap) {
    size_t cap = s->cap ? s->cap * 2 : 4;
    uint64_t *v = realloc(s->v, cap * sizeof *v);
    if (v == NULL) return MB_ENOMEM;
    s->v = v;
    s->cap = cap;
  }
  s->v[s->n++] = pid;
  return 0;
}

static int pidset_remove(pidset *s, uint64_t pid) {
  for (size_t i = 0; i < s->n; i++)
    if (s->v[i] == pid) {
      s->v[i] = s->v[--s->n];
      return 1;
    }
  return 0;
}

static int monset_add(monset *s, uint64_t ref, uint64_t pid, const char *name, int alias) {
  char *copy = NULL;
  if (name && (copy = strdup(name)) == NULL) return MB_ENOMEM;
  if (s->n == s->cap) {
    size_t cap = s->cap ? s->cap * 2 : 4;
    mon *v = realloc(s->v, cap * sizeof *v);
    if (v == NULL) {
      free(copy);
      return MB_ENOMEM;
    }
    s->v = v;
    s->cap = cap;
  }
  s->v[s->n++] = (mon){ref, pid, copy, alias};
  return 0;
}

/* Remove the monitor ref, copying it to *out (the caller frees out->name). */
static int monset_take(monset *s, uint64_t ref, mon *out) {
  for (size_t i = 0; i < s->n; i++)
    if (s->v[i].ref == ref) {
      *out = s->v[i];
      s->v[i] = s->v[--s->n];
      return 1;
    }
  return 0;
}

static void monset_drop(monset *s, uint64_t ref) {
  mon m;
  if (monset_take(s, ref, &m)) free(m.name);
}

/* ================================================================ aliases */

int link_alias(proc *p, uint64_t ref) {
  if (pidset_add(&p->aliases, ref) != 0) return MB_ENOMEM;
  if (reg_alias_add(p->rt, ref, p->pid) != 0) {
    pidset_remove(&p->aliases, ref);
    return MB_ENOMEM;
  }
  return 0;
}

int link_unalias(proc *p, uint64_t ref) {
  if (!pidset_remove(&p->aliases, ref)) return 0;
  return reg_alias_remove(p->rt, ref, p->pid);
}

/* A message to an alias that is no longer active is dropped on arrival. */
static int alias_dead(proc *p, const mbox_item *m) {
  return (m->flags & MBOX_ALIAS) && reg_alias_owner(p->rt, m->ref) != p->pid;
}

void link_free(proc *p) {
  free(p->links.v);
  free(p->aliases.v);
  memset(&p->aliases, 0, sizeof p->aliases);
  for (size_t i = 0; i < p->mon_out.n; i++) free(p->mon_out.v[i].name);
  free(p->mon_out.v);
  free(p->mon_in.v);
  memset(&p->links, 0, sizeof p->links);
  memset(&p->mon_out, 0, sizeof p->mon_out);
  memset(&p->mon_in, 0, sizeof p->mon_in);
}

/* ================================================================ messages made in C */

static mbox_item *item_from(msg_buf *b, int ok, int kind, uint64_t from, uint64_t ref) {
  mbox_item *m = ok ? mbox_item_new(kind, from, ref, b->p, b->len) : NULL;
  msg_buf_free(b);
  return m;
}

static mbox_item *reason_item(int kind, uint64_t from, uint64_t ref, const char *reason) {
  msg_buf b;
  msg_buf_init(&b);
  int ok = msgb_count(&b, 1) == 0 && msgb_str(&b, reason, strlen(reason)) == 0;
  return item_from(&b, ok, kind, from, ref);
}

/* {"EXIT", from, reason} */
static mbox_item *exit_message(uint64_t from, const unsigned char *reason, size_t len) {
  msg_buf b;
  msg_buf_init(&b);
  int ok = msgb_count(&b, 1) == 0 && msgb_table(&b, 3, 0) == 0 &&
           msgb_str(&b, "EXIT", 4) == 0 && msgb_term(&b, from) == 0 &&
           msgb_embed(&b, reason, len) == 0;
  return item_from(&b, ok, SIG_MSG, from, 0);
}

mbox_item *link_down_message(uint64_t ref, uint64_t pid, const char *name,
                             const unsigned char *reason, size_t len) {
  msg_buf b;
  mbox_item *m;
  msg_buf_init(&b);
  int ok = msgb_count(&b, 1) == 0 && msgb_table(&b, 5, 0) == 0 &&
           msgb_str(&b, "DOWN", 4) == 0 && msgb_term(&b, ref) == 0 &&
           msgb_str(&b, "process", 7) == 0;
  if (ok && name)
    ok = msgb_table(&b, 2, 0) == 0 && msgb_str(&b, name, strlen(name)) == 0 &&
         msgb_str(&b, NODE_NAME, strlen(NODE_NAME)) == 0;
  else if (ok)
    ok = msgb_term(&b, pid) == 0;
  ok = ok && msgb_embed(&b, reason, len) == 0;
  m = item_from(&b, ok, SIG_MSG, pid, ref);
  if (m) m->flags |= MBOX_DOWNMSG;
  return m;
}

static mbox_item *noproc_down(uint64_t ref, uint64_t pid, const char *name) {
  msg_buf b;
  mbox_item *m = NULL;
  msg_buf_init(&b);
  if (msgb_count(&b, 1) == 0 && msgb_str(&b, "noproc", 6) == 0)
    m = link_down_message(ref, pid, name, b.p, b.len);
  msg_buf_free(&b);
  return m;
}

/* Queue a message made here on p's own private list (out of memory drops it). */
static void queue_own(proc *p, mbox_item *m) {
  if (m) mbox_append(&p->box, m);
}

/* ================================================================ info */

/* The fields of an info table go to a scratch buffer first and are counted there, since
** the table header announces the count before the fields. */
typedef struct fields {
  msg_buf b;
  uint32_t n;
  int bad;
} fields;

static void key(fields *f, const char *k) {
  f->n++;
  f->bad |= msgb_str(&f->b, k, strlen(k));
}

static void field_str(fields *f, const char *k, const char *v) {
  key(f, k);
  f->bad |= msgb_str(&f->b, v, strlen(v));
}

static void field_int(fields *f, const char *k, int64_t v) {
  key(f, k);
  f->bad |= msgb_int(&f->b, v);
}

static void field_links(fields *f, const pidset *s) {
  key(f, "links");
  f->bad |= msgb_table(&f->b, (uint32_t)s->n, 0);
  for (size_t i = 0; i < s->n; i++) f->bad |= msgb_term(&f->b, s->v[i]);
}

/* monitors: the pids (or names) we monitor; monitored_by: who monitors us. */
static void field_monitors(fields *f, const char *k, const monset *s, int watchers) {
  key(f, k);
  f->bad |= msgb_table(&f->b, (uint32_t)s->n, 0);
  for (size_t i = 0; i < s->n; i++) {
    const mon *m = &s->v[i];
    f->bad |= (!watchers && m->name) ? msgb_str(&f->b, m->name, strlen(m->name))
                                     : msgb_term(&f->b, m->pid);
  }
}

/* The Lua function the process stands in now (first Lua frame of its innermost coroutine). */
static int current_frame(proc *p, lua_Debug *ar) {
  lua_State *co = p->cur ? p->cur : p->body;
  for (int level = 0; co && lua_getstack(co, level, ar); level++) {
    if (!lua_getinfo(co, "Sln", ar)) return 0;
    if (ar->currentline >= 0) return 1;
  }
  return 0;
}

static void field_current(fields *f, proc *p) {
  lua_Debug ar;
  if (!current_frame(p, &ar)) return;
  key(f, "current");
  f->bad |= msgb_table(&f->b, 0, ar.name ? 3 : 2);
  f->bad |= msgb_str(&f->b, "source", 6) || msgb_str(&f->b, ar.short_src, strlen(ar.short_src));
  f->bad |= msgb_str(&f->b, "line", 4) || msgb_int(&f->b, ar.currentline);
  if (ar.name) f->bad |= msgb_str(&f->b, "name", 4) || msgb_str(&f->b, ar.name, strlen(ar.name));
}

static const char *status_name(int st) {
  switch (st) {
    case P_WAITING:
    case P_SLEEPING: return "waiting";
    case P_RUNNABLE: return "runnable";
    default: return "running";
  }
}

static void info_fields(fields *f, proc *p) {
  char name[256];
  field_str(f, "status", status_name(p->status_hint));
  if (reg_name_of(p->rt, p, name, sizeof name)) field_str(f, "name", name);
  field_int(f, "reductions", (int64_t)p->reds);
  field_int(f, "message_queue_len", (int64_t)(p->qlen + p->box.npriv));
  field_int(f, "memory", (int64_t)p->mem);
  field_links(f, &p->links);
  field_monitors(f, "monitors", &p->mon_out, 0);
  field_monitors(f, "monitored_by", &p->mon_in, 1);
  key(f, "trap_exit");
  f->bad |= msgb_bool(&f->b, p->trap_exit);
  field_str(f, "initial_call", p->initial_call ? p->initial_call : "?");
  field_int(f, "messages_in", (int64_t)p->msgs_in);
  field_int(f, "messages_out", (int64_t)p->msgs_out);
  field_int(f, "messages_scanned", (int64_t)p->scanned);
  field_current(f, p);
}

/* {ref, info} for process.info. */
static int info_blob(msg_buf *b, proc *p, uint64_t ref) {
  fields f;
  int bad;
  msg_buf_init(&f.b);
  f.n = 0;
  f.bad = 0;
  info_fields(&f, p);
  bad = f.bad || msgb_count(b, 1) || msgb_table(b, 2, 0) || msgb_term(b, ref) ||
        msgb_table(b, 0, f.n) || msg_buf_add(b, f.b.p, f.b.len);
  msg_buf_free(&f.b);
  return bad;
}

static void reply_info(proc *p, const mbox_item *req) {
  msg_buf b;
  msg_buf_init(&b);
  mbox_item *m = item_from(&b, info_blob(&b, p, req->ref) == 0, SIG_MSG, p->pid, 0);
  if (m == NULL) return;
  if (req->from == p->pid) queue_own(p, m);
  else proc_deliver(p->rt, req->from, m);
}

static void reply_dead_info(mb_runtime *rt, uint64_t dead, const mbox_item *req) {
  msg_buf b;
  msg_buf_init(&b);
  int ok = msgb_count(&b, 1) == 0 && msgb_table(&b, 2, 0) == 0 &&
           msgb_term(&b, req->ref) == 0 && msgb_nil(&b) == 0;
  mbox_item *m = item_from(&b, ok, SIG_MSG, dead, 0);
  if (m) proc_deliver(rt, req->from, m);
}

/* ================================================================ acting on signals */

static void on_exit_signal(proc *p, const mbox_item *m, int linked) {
  int is_kill = msg_is_string(m->data, m->len, "kill");
  if (!linked && is_kill) {
    proc_set_exit_string(p, "killed", 1);
    return;
  }
  if (p->trap_exit) {
    queue_own(p, exit_message(m->from, m->data, m->len));
    return;
  }
  if (msg_is_string(m->data, m->len, "normal")) {
    if (!linked && m->from == p->pid) proc_set_exit(p, m->data, m->len, 1);
    return;
  }
  proc_set_exit(p, m->data, m->len, 1);
}

static void on_down(proc *p, mbox_item *m) {
  mon w;
  if (!monset_take(&p->mon_out, m->ref, &w)) return;
  if (w.alias) link_unalias(p, w.ref);
  queue_own(p, link_down_message(m->ref, m->from, w.name, m->data, m->len));
  free(w.name);
}

/* Act on one item; returns 1 if it now belongs to the private list. */
static int handle(proc *p, mbox_item *m) {
  switch (m->kind) {
    case SIG_MSG:
      if (alias_dead(p, m)) return 0;
      mbox_append(&p->box, m);
      return 1;
    case SIG_EXIT: on_exit_signal(p, m, 0); break;
    case SIG_LINKEXIT:
      if (pidset_remove(&p->links, m->from)) on_exit_signal(p, m, 1);
      break;
    case SIG_LINK: pidset_add(&p->links, m->from); break;
    case SIG_UNLINK: pidset_remove(&p->links, m->from); break;
    case SIG_MONITOR: monset_add(&p->mon_in, m->ref, m->from, NULL, 0); break;
    case SIG_DEMONITOR: monset_drop(&p->mon_in, m->ref); break;
    case SIG_DOWN: on_down(p, m); break;
    case SIG_INFO: reply_info(p, m); break;
    case SIG_INTERRUPT: p->interrupted = 1; break;
    case SIG_CODECHECK: code_on_check(p, m); break;
  }
  return 0;
}

void link_signals(proc *p) {
  mbox_item *m;
  atomic_store(&p->sigpending, 0);
  m = mbox_take(&p->box);
  while (m) {
    mbox_item *next = m->next;
    if (!handle(p, m)) mbox_item_free(m);
    m = next;
  }
}

/* ================================================================ the calls */

int link_link(proc *p, uint64_t pid) {
  proc *t;
  if (pid == p->pid) return 0;
  t = proc_lookup(p->rt, pid);
  if (t == NULL) {
    mbox_item *m;
    if (!p->trap_exit) return MB_ENOPROC;
    m = reason_item(SIG_MSG, pid, 0, "noproc");
    if (m) queue_own(p, exit_message(pid, m->data, m->len));
    mbox_item_free(m);
    return 0;
  }
  proc_release(t);
  if (pidset_has(&p->links, pid)) return 0;
  if (pidset_add(&p->links, pid) != 0) return MB_ENOMEM;
  proc_deliver(p->rt, pid, mbox_item_new(SIG_LINK, p->pid, 0, NULL, 0));
  return 0;
}

void link_unlink(proc *p, uint64_t pid) {
  if (pidset_remove(&p->links, pid))
    proc_deliver(p->rt, pid, mbox_item_new(SIG_UNLINK, p->pid, 0, NULL, 0));
}

int link_monitor(proc *p, uint64_t pid, const char *name, uint64_t ref, int alias) {
  proc *t = pid ? proc_lookup(p->rt, pid) : NULL;
  if (t == NULL) {
    queue_own(p, noproc_down(ref, pid, name));
    return 0;
  }
  proc_release(t);
  if (alias && link_alias(p, ref) != 0) return MB_ENOMEM;
  if (monset_add(&p->mon_out, ref, pid, name, alias) != 0) {
    if (alias) link_unalias(p, ref);
    return MB_ENOMEM;
  }
  proc_deliver(p->rt, pid, mbox_item_new(SIG_MONITOR, p->pid, ref, NULL, 0));
  return 0;
}

static int is_down_item(const mbox_item *m, void *ud) {
  return (m->flags & MBOX_DOWNMSG) && m->ref == *(uint64_t *)ud;
}

int link_demonitor(proc *p, uint64_t ref, int flush) {
  mon w;
  int active;
  link_signals(p);
  active = monset_take(&p->mon_out, ref, &w);
  if (active) {
    if (w.alias) link_unalias(p, ref);
    proc_deliver(p->rt, w.pid, mbox_item_new(SIG_DEMONITOR, p->pid, ref, NULL, 0));
    free(w.name);
  }
  if (flush) mbox_item_free(mbox_remove_if(&p->box, is_down_item, &ref));
  return active;
}

void link_exit_signal(proc *p, uint64_t to, const unsigned char *reason, size_t len) {
  mbox_item *m = mbox_item_new(SIG_EXIT, p->pid, 0, reason, len);
  if (m) proc_deliver(p->rt, to, m);
}

int link_add_spawn_link(proc *parent, proc *child) {
  if (pidset_add(&parent->links, child->pid) != 0) return MB_ENOMEM;
  if (pidset_add(&child->links, parent->pid) != 0) {
    pidset_remove(&parent->links, child->pid);
    return MB_ENOMEM;
  }
  return 0;
}

int link_add_spawn_monitor(proc *watcher, uint64_t wpid, proc *child, uint64_t ref) {
  if (watcher && monset_add(&watcher->mon_out, ref, child->pid, NULL, 0) != 0) return MB_ENOMEM;
  if (monset_add(&child->mon_in, ref, wpid, NULL, 0) != 0) {
    if (watcher) monset_drop(&watcher->mon_out, ref);
    return MB_ENOMEM;
  }
  return 0;
}

/* ================================================================ death */

/* Signals that arrive while p dies still count: a link or monitor made just before the
** end gets the real reason, not noproc. */
static void settle(proc *p, mbox_item *m) {
  switch (m->kind) {
    case SIG_LINK: pidset_add(&p->links, m->from); break;
    case SIG_UNLINK:
    case SIG_LINKEXIT: pidset_remove(&p->links, m->from); break;
    case SIG_MONITOR: monset_add(&p->mon_in, m->ref, m->from, NULL, 0); break;
    case SIG_DEMONITOR: monset_drop(&p->mon_in, m->ref); break;
    case SIG_INFO: reply_dead_info(p->rt, p->pid, m); break;
    case SIG_CODECHECK: code_on_check_dead(p->rt, m); break;
    default: break;
  }
}

void link_close(proc *p) {
  mbox_item *m = mbox_close(&p->box);
  for (size_t i = 0; i < p->aliases.n; i++) reg_alias_remove(p->rt, p->aliases.v[i], p->pid);
  p->aliases.n = 0;
  while (m) {
    mbox_item *next = m->next;
    settle(p, m);
    mbox_item_free(m);
    m = next;
  }
  while ((m = mbox_shift(&p->box)) != NULL) mbox_item_free(m);
  mbox_item_free(p->decoding);
  p->decoding = NULL;
}

void link_notify(proc *p) {
  mb_runtime *rt = p->rt;
  for (size_t i = 0; i < p->links.n; i++)
    proc_deliver(rt, p->links.v[i],
                 mbox_item_new(SIG_LINKEXIT, p->pid, 0, p->reason, p->reasonlen));
  for (size_t i = 0; i < p->mon_in.n; i++)
    proc_deliver(rt, p->mon_in.v[i].pid,
                 mbox_item_new(SIG_DOWN, p->pid, p->mon_in.v[i].ref, p->reason, p->reasonlen));
  for (size_t i = 0; i < p->mon_out.n; i++)
    proc_deliver(rt, p->mon_out.v[i].pid,
                 mbox_item_new(SIG_DEMONITOR, p->pid, p->mon_out.v[i].ref, NULL, 0));
}

void link_dead_target(mb_runtime *rt, uint64_t target, mbox_item *m) {
  if (m == NULL) return;
  switch (m->kind) {
    case SIG_LINK:
      proc_deliver(rt, m->from, reason_item(SIG_LINKEXIT, target, 0, "noproc"));
      break;
    case SIG_MONITOR:
      proc_deliver(rt, m->from, reason_item(SIG_DOWN, target, m->ref, "noproc"));
      break;
    case SIG_INFO: reply_dead_info(rt, target, m); break;
    case SIG_CODECHECK: code_on_check_dead(rt, m); break;
    default: break;
  }
  mbox_item_free(m);
}
