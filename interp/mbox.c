/* mbox.c — a process's mailbox: lock-free multi-producer inbox, owner-private FIFO. */
#include <stdlib.h>
#include <string.h>

#include "mbox.h"
#include "moonbeam.h"

/* The inbox holds this once the owner has died: no real item lives at address 1. */
#define MBOX_CLOSED ((mbox_item *)(uintptr_t)1)

mbox_item *mbox_item_new(int kind, uint64_t from, uint64_t ref, const void *data,
                         size_t len) {
  mbox_item *m = malloc(sizeof *m + len);
  if (m == NULL) return NULL;
  m->next = NULL;
  m->kind = (uint8_t)kind;
  m->flags = 0;
  m->from = from;
  m->ref = ref;
  m->len = len;
  if (len > 0) memcpy(m->data, data, len);
  return m;
}

void mbox_item_free(mbox_item *m) { free(m); }

void mbox_free_list(mbox_item *m) {
  while (m != NULL) {
    mbox_item *next = m->next;
    free(m);
    m = next;
  }
}

void mbox_init(mbox *b) {
  atomic_init(&b->inbox, NULL);
  b->head = b->tail = NULL;
  b->npriv = 0;
}

int mbox_push(mbox *b, mbox_item *m) {
  mbox_item *old = atomic_load_explicit(&b->inbox, memory_order_relaxed);
  do {
    if (old == MBOX_CLOSED) return MB_ENOPROC;
    m->next = old;
  } while (!atomic_compare_exchange_weak_explicit(&b->inbox, &old, m, memory_order_seq_cst,
                                                  memory_order_relaxed));
  return 0;
}

int mbox_pending(mbox *b) {
  mbox_item *m = atomic_load_explicit(&b->inbox, memory_order_seq_cst);
  return m != NULL && m != MBOX_CLOSED;
}

/* The inbox is newest first; reversing it gives arrival order. */
static mbox_item *reverse(mbox_item *m) {
  mbox_item *out = NULL;
  while (m != NULL) {
    mbox_item *next = m->next;
    m->next = out;
    out = m;
    m = next;
  }
  return out;
}

mbox_item *mbox_take(mbox *b) {
  mbox_item *m;
  if (atomic_load_explicit(&b->inbox, memory_order_relaxed) == NULL) return NULL;
  m = atomic_exchange_explicit(&b->inbox, NULL, memory_order_acquire);
  return reverse(m);
}

mbox_item *mbox_close(mbox *b) {
  mbox_item *m = atomic_exchange_explicit(&b->inbox, MBOX_CLOSED, memory_order_acq_rel);
  return m == MBOX_CLOSED ? NULL : reverse(m);
}

void mbox_append(mbox *b, mbox_item *m) {
  m->next = NULL;
  if (b->tail) b->tail->next = m;
  else b->head = m;
  b->tail = m;
  b->npriv++;
}

mbox_item *mbox_shift(mbox *b) {
  mbox_item *m = b->head;
  if (m == NULL) return NULL;
  b->head = m->next;
  if (b->head == NULL) b->tail = NULL;
  b->npriv--;
  m->next = NULL;
  return m;
}

mbox_item *mbox_remove_if(mbox *b, int (*pred)(const mbox_item *, void *), void *ud) {
  mbox_item *prev = NULL;
  for (mbox_item *m = b->head; m != NULL; prev = m, m = m->next) {
    if (!pred(m, ud)) continue;
    if (prev) prev->next = m->next;
    else b->head = m->next;
    if (b->tail == m) b->tail = prev;
    b->npriv--;
    m->next = NULL;
    return m;
  }
  return NULL;
}
