/*
** mbox.h — a process's mailbox: one ordered stream of messages and signals.
**
** Any thread pushes items onto the inbox, a lock-free stack; only the owner (the thread that
** is running the process) takes them, all at once and turned into arrival order, and keeps
** what it has not handled yet on a private FIFO list. Because messages and signals share one
** stream, a signal (say, a DOWN) never overtakes a message the same sender sent before it.
**
** When the process dies its owner closes the inbox: later pushes fail, and the pusher treats
** the process as already dead.
**
** Ownership: an item belongs to the pusher until mbox_push succeeds, then to the mailbox
** until the owner takes it; whoever holds an item last frees it with mbox_item_free.
**
** Threads: mbox_push and mbox_pending from any thread; everything else from the owner only.
*/
#ifndef MBOX_H
#define MBOX_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

/* What an item carries (the signal protocol lives in link.c). */
enum {
  SIG_MSG,        /* a message: data is its blob */
  SIG_EXIT,       /* exit/2 from `from`: data is the reason */
  SIG_LINKEXIT,   /* a linked process ended: data is the reason */
  SIG_LINK,       /* `from` linked to us */
  SIG_UNLINK,     /* `from` unlinked from us */
  SIG_MONITOR,    /* `from` monitors us with `ref` */
  SIG_DEMONITOR,  /* `from` dropped monitor `ref` */
  SIG_DOWN,       /* the process `from` we monitor with `ref` ended: data is the reason */
  SIG_INFO,       /* `from` asks for process.info; reply tagged with `ref` */
  SIG_INTERRUPT,  /* raise "interrupted!" in the process (Ctrl-C in the shell) */
  SIG_CODECHECK   /* a module version was published: pass a safe point soon; with data,
                  ** a question about version `ref` of a module: die ("killed") if still
                  ** running it and it is dropped, and answer `from` (code.c) */
};

/* Item flags. */
#define MBOX_DOWNMSG 1u   /* a SIG_MSG holding a DOWN message for monitor `ref` */
#define MBOX_ALIAS 2u     /* a SIG_MSG sent to alias `ref`: dropped if it is no longer active */

typedef struct mbox_item mbox_item;
struct mbox_item {
  mbox_item *next;
  uint8_t kind;
  uint8_t flags;
  uint64_t from;          /* sender pid (0: the runtime itself) */
  uint64_t ref;           /* monitor or request ref, when the kind has one */
  size_t len;
  unsigned char data[];   /* blob: the message or the exit reason */
};

typedef struct mbox {
  _Atomic(mbox_item *) inbox;  /* newest first; MBOX_CLOSED after death */
  mbox_item *head, *tail;      /* owner: taken but not yet handled, oldest first */
  size_t npriv;                /* owner: items on the private list */
} mbox;

mbox_item *mbox_item_new(int kind, uint64_t from, uint64_t ref, const void *data,
                         size_t len);
void mbox_item_free(mbox_item *m);
void mbox_free_list(mbox_item *m);

void mbox_init(mbox *b);
/* Push m (any thread). 0, or MB_ENOPROC when the mailbox is closed (m stays the caller's). */
int mbox_push(mbox *b, mbox_item *m);
/* Is anything waiting in the inbox? (any thread) */
int mbox_pending(mbox *b);
/* Take everything pushed so far, oldest first (owner). */
mbox_item *mbox_take(mbox *b);
/* Like mbox_take, and make every later push fail (owner, once, at death). */
mbox_item *mbox_close(mbox *b);

/* The private list (owner). */
void mbox_append(mbox *b, mbox_item *m);
mbox_item *mbox_shift(mbox *b);
/* Removes and returns the first private item for which pred(item, ud) is true, or NULL. */
mbox_item *mbox_remove_if(mbox *b, int (*pred)(const mbox_item *, void *), void *ud);

#endif
