/* reg.c — registered names (a chained hash table) and aliases, under one lock. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "reg.h"
#include "rt.h"
#include "u64map.h"

typedef struct entry {
  char *name;      /* the same string as the owner's proc->name */
  uint64_t pid;
  struct entry *next;
} entry;

struct reg {
  pthread_mutex_t lock;
  entry **buckets;
  size_t nbuckets, count;
  u64map aliases;          /* alias ref -> owner pid */
};

static size_t hash(const char *s) {
  size_t h = 1469598103934665603u;
  for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211u;
  return h;
}

int reg_init(mb_runtime *rt) {
  reg *r = calloc(1, sizeof *r);
  if (r == NULL) return MB_ENOMEM;
  r->nbuckets = 64;
  r->buckets = calloc(r->nbuckets, sizeof *r->buckets);
  if (r->buckets == NULL) {
    free(r);
    return MB_ENOMEM;
  }
  pthread_mutex_init(&r->lock, NULL);
  rt->names = r;
  return 0;
}

void reg_free(mb_runtime *rt) {
  reg *r = rt->names;
  if (r == NULL) return;
  for (size_t i = 0; i < r->nbuckets; i++) {
    entry *e = r->buckets[i];
    while (e) {
      entry *next = e->next;
      free(e);    /* the name belongs to the proc */
      e = next;
    }
  }
  pthread_mutex_destroy(&r->lock);
  u64map_free(&r->aliases);
  free(r->buckets);
  free(r);
  rt->names = NULL;
}

static entry **find(reg *r, const char *name) {
  entry **pe = &r->buckets[hash(name) % r->nbuckets];
  while (*pe && strcmp((*pe)->name, name) != 0) pe = &(*pe)->next;
  return pe;
}

/* Double the buckets when the table gets full; failure to grow only costs speed. */
static void grow(reg *r) {
  size_t n = r->nbuckets * 2;
  entry **b = calloc(n, sizeof *b);
  if (b == NULL) return;
  for (size_t i = 0; i < r->nbuckets; i++) {
    entry *e = r->buckets[i];
    while (e) {
      entry *next = e->next;
      size_t h = hash(e->name) % n;
      e->next = b[h];
      b[h] = e;
      e = next;
    }
  }
  free(r->buckets);
  r->buckets = b;
  r->nbuckets = n;
}

static int add_locked(reg *r, const char *name, proc *p) {
  entry **pe = find(r, name);
  entry *e;
  if (*pe) return REG_TAKEN;
  if (p->name) return REG_HASNAME;
  if (atomic_load(&p->state) == P_EXITING) return REG_DEAD;
  e = malloc(sizeof *e);
  if (e == NULL) return MB_ENOMEM;
  e->name = strdup(name);
  if (e->name == NULL) {
    free(e);
    return MB_ENOMEM;
  }
  e->pid = atomic_load(&p->pid);
  e->next = NULL;
  *pe = e;
  p->name = e->name;
  if (++r->count > r->nbuckets) grow(r);
  return REG_OK;
}

int reg_add(mb_runtime *rt, const char *name, proc *p) {
  reg *r = rt->names;
  int st;
  pthread_mutex_lock(&r->lock);
  st = add_locked(r, name, p);
  pthread_mutex_unlock(&r->lock);
  return st;
}

/* Unlink the entry at *pe; the caller frees the name. */
static char *unlink_entry(reg *r, entry **pe) {
  entry *e = *pe;
  char *name = e->name;
  *pe = e->next;
  free(e);
  r->count--;
  return name;
}

int reg_remove(mb_runtime *rt, const char *name) {
  reg *r = rt->names;
  entry **pe;
  int found = 0;
  pthread_mutex_lock(&r->lock);
  pe = find(r, name);
  if (*pe) {
    uint64_t pid = (*pe)->pid;
    proc *p = proc_lookup(rt, pid);
    char *s = unlink_entry(r, pe);
    if (p) {
      if (p->name == s) p->name = NULL;
      proc_release(p);
    }
    free(s);
    found = 1;
  }
  pthread_mutex_unlock(&r->lock);
  return found;
}

void reg_remove_proc(mb_runtime *rt, proc *p) {
  reg *r = rt->names;
  pthread_mutex_lock(&r->lock);
  if (p->name) {
    entry **pe = find(r, p->name);
    if (*pe) free(unlink_entry(r, pe));
    else free(p->name);
    p->name = NULL;
  }
  pthread_mutex_unlock(&r->lock);
}

uint64_t reg_whereis(mb_runtime *rt, const char *name) {
  reg *r = rt->names;
  uint64_t pid = 0;
  pthread_mutex_lock(&r->lock);
  entry *e = *find(r, name);
  if (e) pid = e->pid;
  pthread_mutex_unlock(&r->lock);
  return pid;
}

int reg_name_of(mb_runtime *rt, proc *p, char *buf, size_t n) {
  reg *r = rt->names;
  int has = 0;
  pthread_mutex_lock(&r->lock);
  if (p->name && n > 0) {
    strncpy(buf, p->name, n - 1);
    buf[n - 1] = '\0';
    has = 1;
  }
  pthread_mutex_unlock(&r->lock);
  return has;
}

reg_entry *reg_snapshot(mb_runtime *rt, size_t *n) {
  reg *r = rt->names;
  reg_entry *copy;
  *n = 0;
  pthread_mutex_lock(&r->lock);
  copy = malloc((r->count + 1) * sizeof *copy);
  for (size_t i = 0; copy && i < r->nbuckets; i++)
    for (entry *e = r->buckets[i]; e; e = e->next) {
      copy[*n].name = strdup(e->name);
      copy[*n].pid = e->pid;
      if (copy[*n].name) (*n)++;
    }
  pthread_mutex_unlock(&r->lock);
  return copy;
}

void reg_snapshot_free(reg_entry *v, size_t n) {
  for (size_t i = 0; i < n; i++) free(v[i].name);
  free(v);
}

/* ================================================================ aliases */

int reg_alias_add(mb_runtime *rt, uint64_t ref, uint64_t pid) {
  reg *r = rt->names;
  int st;
  pthread_mutex_lock(&r->lock);
  st = u64map_put(&r->aliases, ref, pid);
  pthread_mutex_unlock(&r->lock);
  return st;
}

int reg_alias_remove(mb_runtime *rt, uint64_t ref, uint64_t pid) {
  reg *r = rt->names;
  int found = 0;
  pthread_mutex_lock(&r->lock);
  size_t i = u64map_find(&r->aliases, ref);
  if (i != (size_t)-1 && r->aliases.vals[i] == pid) {
    u64map_del(&r->aliases, i);
    found = 1;
  }
  pthread_mutex_unlock(&r->lock);
  return found;
}

uint64_t reg_alias_owner(mb_runtime *rt, uint64_t ref) {
  reg *r = rt->names;
  uint64_t pid = 0;
  pthread_mutex_lock(&r->lock);
  size_t i = u64map_find(&r->aliases, ref);
  if (i != (size_t)-1) pid = r->aliases.vals[i];
  pthread_mutex_unlock(&r->lock);
  return pid;
}
