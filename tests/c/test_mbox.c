/* test_mbox.c — mbox.c: items, arrival order, the private FIFO, closing, many producers. */
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <sched.h>

#include "mbox.h"
#include "moonbeam.h"
#include "test.h"

/* {==================================================================
** Helpers
** =================================================================== */

/* Pushes a message from `from` whose ref (and data) is `seq`; 0 or the push's error. */
static int push_seq(mbox *b, uint64_t from, uint64_t seq) {
  mbox_item *m = mbox_item_new(SIG_MSG, from, seq, &seq, sizeof seq);
  int rc;
  if (m == NULL) return MB_ENOMEM;
  rc = mbox_push(b, m);
  if (rc != 0) mbox_item_free(m);
  return rc;
}

/* Writes the refs of the chain m into out (at most max); returns the chain's length. */
static size_t chain_refs(const mbox_item *m, uint64_t *out, size_t max) {
  size_t n = 0;
  for (; m != NULL; m = m->next, n++)
    if (n < max) out[n] = m->ref;
  return n;
}

/* Is the chain m exactly the refs want[0..n)? */
static int chain_is(const mbox_item *m, const uint64_t *want, size_t n) {
  uint64_t got[64];
  return chain_refs(m, got, 64) == n && memcmp(got, want, n * sizeof *want) == 0;
}

/* Appends every item of the chain m to the private list. */
static void append_chain(mbox *b, mbox_item *m) {
  while (m != NULL) {
    mbox_item *next = m->next;
    mbox_append(b, m);
    m = next;
  }
}

/* Fills the private list with refs first..last, through the inbox. */
static void fill_private(mbox *b, uint64_t first, uint64_t last) {
  for (uint64_t i = first; i <= last; i++) push_seq(b, 1, i);
  append_chain(b, mbox_take(b));
}

/* Does the private list hold exactly want[0..n), with npriv and tail to match? */
static int private_is(const mbox *b, const uint64_t *want, size_t n) {
  const mbox_item *last = NULL;
  for (const mbox_item *m = b->head; m != NULL; m = m->next) last = m;
  if (b->npriv != n || b->tail != last) return 0;
  return chain_is(b->head, want, n);
}

static void drain_private(mbox *b) {
  mbox_item *m;
  while ((m = mbox_shift(b)) != NULL) mbox_item_free(m);
}

static int ref_is(const mbox_item *m, void *ud) { return m->ref == *(uint64_t *)ud; }

static int from_is(const mbox_item *m, void *ud) { return m->from == *(uint64_t *)ud; }

/* }================================================================== */

/* {==================================================================
** Items
** =================================================================== */

TEST(item_new_copies_data) {
  char src[] = "hello, mailbox";
  mbox_item *m = mbox_item_new(SIG_DOWN, 42, 7, src, sizeof src);
  CHECK(m != NULL);
  if (m == NULL) return;
  memset(src, 'x', sizeof src - 1);  /* the item owns a copy, not the caller's buffer */
  CHECK(m->next == NULL);
  CHECK(m->kind == SIG_DOWN);
  CHECK(m->flags == 0);
  CHECK(m->from == 42);
  CHECK(m->ref == 7);
  CHECK(m->len == sizeof src);
  CHECK_STR((const char *)m->data, "hello, mailbox");
  mbox_item_free(m);
}

TEST(item_new_empty_data) {
  mbox_item *m = mbox_item_new(SIG_LINK, UINT64_MAX, UINT64_MAX - 1, NULL, 0);
  CHECK(m != NULL);
  if (m == NULL) return;
  CHECK(m->kind == SIG_LINK);
  CHECK(m->from == UINT64_MAX);
  CHECK(m->ref == UINT64_MAX - 1);
  CHECK(m->len == 0);
  CHECK(m->next == NULL);
  mbox_item_free(m);
}

TEST(item_new_large_data) {
  size_t len = 1 << 20;
  unsigned char *src = malloc(len);
  mbox_item *m;
  for (size_t i = 0; i < len; i++) src[i] = (unsigned char)(i * 31 + 7);
  m = mbox_item_new(SIG_EXIT, 1, 0, src, len);
  CHECK(m != NULL);
  if (m != NULL) {
    CHECK(m->len == len);
    CHECK(memcmp(m->data, src, len) == 0);
  }
  mbox_item_free(m);
  free(src);
}

TEST(item_fields_survive_the_mailbox) {
  mbox b;
  mbox_item *m = mbox_item_new(SIG_MSG, 9, 77, "down", 4);
  mbox_init(&b);
  m->flags = MBOX_DOWNMSG;
  CHECK(mbox_push(&b, m) == 0);
  append_chain(&b, mbox_take(&b));
  m = mbox_shift(&b);
  CHECK(m != NULL);
  if (m == NULL) return;
  CHECK(m->kind == SIG_MSG);
  CHECK(m->flags == MBOX_DOWNMSG);
  CHECK(m->from == 9);
  CHECK(m->ref == 77);
  CHECK(m->len == 4 && memcmp(m->data, "down", 4) == 0);
  CHECK(m->next == NULL);
  mbox_item_free(m);
}

/* Leaks here show up under ASan, which is the real check. */
TEST(free_list_frees_a_chain) {
  mbox_item *head = NULL;
  for (int i = 0; i < 100; i++) {
    mbox_item *m = mbox_item_new(SIG_MSG, 1, (uint64_t)i, "abc", 3);
    m->next = head;
    head = m;
  }
  mbox_free_list(head);
  mbox_free_list(NULL);
  mbox_item_free(NULL);
  CHECK(1);
}

/* }================================================================== */

/* {==================================================================
** One thread: the inbox
** =================================================================== */

TEST(take_gives_arrival_order) {
  mbox b;
  mbox_item *m;
  const uint64_t want[] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
  mbox_init(&b);
  for (uint64_t i = 0; i < 10; i++) CHECK(push_seq(&b, 1, i) == 0);
  m = mbox_take(&b);
  CHECK(chain_is(m, want, 10));
  CHECK(mbox_take(&b) == NULL);
  mbox_free_list(m);
}

TEST(take_single_item) {
  mbox b;
  mbox_item *m;
  mbox_init(&b);
  CHECK(push_seq(&b, 3, 5) == 0);
  m = mbox_take(&b);
  CHECK(m != NULL && m->ref == 5 && m->from == 3 && m->next == NULL);
  mbox_free_list(m);
}

TEST(take_on_empty_returns_null) {
  mbox b;
  mbox_init(&b);
  CHECK(mbox_take(&b) == NULL);
  CHECK(mbox_take(&b) == NULL);
  CHECK(b.head == NULL && b.tail == NULL && b.npriv == 0);
}

TEST(pending_reflects_the_inbox) {
  mbox b;
  mbox_init(&b);
  CHECK(!mbox_pending(&b));
  push_seq(&b, 1, 0);
  CHECK(mbox_pending(&b));
  push_seq(&b, 1, 1);
  CHECK(mbox_pending(&b));
  append_chain(&b, mbox_take(&b));
  CHECK(!mbox_pending(&b));  /* the private list is not the inbox */
  CHECK(b.npriv == 2);
  push_seq(&b, 1, 2);
  CHECK(mbox_pending(&b));
  append_chain(&b, mbox_take(&b));
  CHECK(!mbox_pending(&b));
  drain_private(&b);
}

TEST(push_after_take_comes_in_the_next_take) {
  mbox b;
  mbox_item *first, *second;
  const uint64_t want1[] = {0, 1, 2}, want2[] = {3, 4};
  mbox_init(&b);
  for (uint64_t i = 0; i < 3; i++) push_seq(&b, 1, i);
  first = mbox_take(&b);
  for (uint64_t i = 3; i < 5; i++) push_seq(&b, 1, i);
  CHECK(chain_is(first, want1, 3));  /* the later pushes did not join the taken chain */
  second = mbox_take(&b);
  CHECK(chain_is(second, want2, 2));
  CHECK(mbox_take(&b) == NULL);
  mbox_free_list(first);
  mbox_free_list(second);
}

/* }================================================================== */

/* {==================================================================
** One thread: the private list
** =================================================================== */

TEST(append_and_shift_keep_fifo) {
  mbox b;
  mbox_item *m;
  const uint64_t want[] = {0, 1, 2, 3, 4};
  mbox_init(&b);
  CHECK(mbox_shift(&b) == NULL);
  fill_private(&b, 0, 4);
  CHECK(private_is(&b, want, 5));
  for (uint64_t i = 0; i < 5; i++) {
    m = mbox_shift(&b);
    CHECK(m != NULL && m->ref == i && m->next == NULL);
    CHECK(b.npriv == 4 - i);
    mbox_item_free(m);
  }
  CHECK(b.head == NULL && b.tail == NULL);
  CHECK(mbox_shift(&b) == NULL);
  CHECK(b.npriv == 0);
}

/* Append clears next: an item taken from the middle of a chain must not drag the rest. */
TEST(append_cuts_the_chain) {
  mbox b;
  mbox_item *chain, *rest;
  const uint64_t want[] = {0};
  mbox_init(&b);
  for (uint64_t i = 0; i < 3; i++) push_seq(&b, 1, i);
  chain = mbox_take(&b);
  rest = chain->next;
  mbox_append(&b, chain);
  CHECK(private_is(&b, want, 1));
  mbox_free_list(rest);
  drain_private(&b);
}

TEST(append_after_shifting_the_last) {
  mbox b;
  const uint64_t want[] = {10, 11};
  mbox_init(&b);
  fill_private(&b, 0, 0);
  mbox_item_free(mbox_shift(&b));
  CHECK(b.head == NULL && b.tail == NULL && b.npriv == 0);
  fill_private(&b, 10, 11);
  CHECK(private_is(&b, want, 2));
  drain_private(&b);
}

TEST(interleaved_append_and_shift) {
  mbox b;
  uint64_t next_in = 0, next_out = 0;
  int ok = 1;
  mbox_init(&b);
  for (int round = 0; round < 50; round++) {
    for (int i = 0; i < round % 7 + 1; i++) push_seq(&b, 1, next_in++);
    append_chain(&b, mbox_take(&b));
    for (int i = 0; i < round % 5 + 1; i++) {
      mbox_item *m = mbox_shift(&b);
      if (m == NULL) break;
      ok &= m->ref == next_out++;
      mbox_item_free(m);
    }
    ok &= b.npriv == next_in - next_out;
  }
  CHECK(ok);
  drain_private(&b);
}

TEST(remove_if_no_match) {
  mbox b;
  uint64_t key = 99;
  const uint64_t want[] = {0, 1, 2};
  mbox_init(&b);
  CHECK(mbox_remove_if(&b, ref_is, &key) == NULL);  /* empty list */
  fill_private(&b, 0, 2);
  CHECK(mbox_remove_if(&b, ref_is, &key) == NULL);
  CHECK(private_is(&b, want, 3));
  drain_private(&b);
}

TEST(remove_if_removes_only_the_first_match) {
  mbox b;
  uint64_t sender = 2;
  mbox_item *m;
  const uint64_t want1[] = {0, 2, 3, 4}, want2[] = {0, 2, 4};
  mbox_init(&b);
  push_seq(&b, 1, 0);
  push_seq(&b, 2, 1);
  push_seq(&b, 1, 2);
  push_seq(&b, 2, 3);
  push_seq(&b, 1, 4);
  append_chain(&b, mbox_take(&b));
  m = mbox_remove_if(&b, from_is, &sender);
  CHECK(m != NULL && m->ref == 1 && m->next == NULL);
  mbox_item_free(m);
  CHECK(private_is(&b, want1, 4));
  m = mbox_remove_if(&b, from_is, &sender);
  CHECK(m != NULL && m->ref == 3);
  mbox_item_free(m);
  CHECK(private_is(&b, want2, 3));
  CHECK(mbox_remove_if(&b, from_is, &sender) == NULL);
  drain_private(&b);
}

TEST(remove_if_head) {
  mbox b;
  uint64_t key = 0;
  mbox_item *m;
  const uint64_t want[] = {1, 2};
  mbox_init(&b);
  fill_private(&b, 0, 2);
  m = mbox_remove_if(&b, ref_is, &key);
  CHECK(m != NULL && m->ref == 0);
  mbox_item_free(m);
  CHECK(private_is(&b, want, 2));
  drain_private(&b);
}

TEST(remove_if_tail_then_append) {
  mbox b;
  uint64_t key = 2;
  mbox_item *m;
  const uint64_t want1[] = {0, 1}, want2[] = {0, 1, 3};
  mbox_init(&b);
  fill_private(&b, 0, 2);
  m = mbox_remove_if(&b, ref_is, &key);
  CHECK(m != NULL && m->ref == 2);
  mbox_item_free(m);
  CHECK(private_is(&b, want1, 2));
  fill_private(&b, 3, 3);  /* lands after 1, not after the removed 2 */
  CHECK(private_is(&b, want2, 3));
  drain_private(&b);
}

TEST(remove_if_only_item_then_append) {
  mbox b;
  uint64_t key = 5;
  mbox_item *m;
  const uint64_t want[] = {6};
  mbox_init(&b);
  fill_private(&b, 5, 5);
  m = mbox_remove_if(&b, ref_is, &key);
  CHECK(m != NULL && m->ref == 5);
  mbox_item_free(m);
  CHECK(b.head == NULL && b.tail == NULL && b.npriv == 0);
  fill_private(&b, 6, 6);
  CHECK(private_is(&b, want, 1));
  drain_private(&b);
}

/* }================================================================== */

/* {==================================================================
** Closing
** =================================================================== */

TEST(close_returns_everything_in_order) {
  mbox b;
  mbox_item *m;
  const uint64_t want[] = {0, 1, 2, 3};
  mbox_init(&b);
  for (uint64_t i = 0; i < 4; i++) push_seq(&b, 1, i);
  m = mbox_close(&b);
  CHECK(chain_is(m, want, 4));
  CHECK(!mbox_pending(&b));
  mbox_free_list(m);
}

/* A push to a closed mailbox fails and hands the item back: freeing it is the caller's job. */
TEST(push_after_close_is_refused) {
  mbox b;
  mbox_item *m;
  mbox_init(&b);
  push_seq(&b, 1, 0);
  mbox_free_list(mbox_close(&b));
  for (int i = 0; i < 3; i++) {
    m = mbox_item_new(SIG_MSG, 1, 1, "late", 4);
    CHECK(mbox_push(&b, m) == MB_ENOPROC);
    CHECK(m->ref == 1 && m->len == 4 && memcmp(m->data, "late", 4) == 0);  /* untouched */
    mbox_item_free(m);
    CHECK(!mbox_pending(&b));
  }
}

TEST(close_on_empty_returns_null) {
  mbox b;
  mbox_init(&b);
  CHECK(mbox_close(&b) == NULL);
  CHECK(!mbox_pending(&b));
  CHECK(push_seq(&b, 1, 0) == MB_ENOPROC);
}

/* The private list outlives the close: the owner still shifts what it had taken. */
TEST(close_leaves_the_private_list) {
  mbox b;
  mbox_item *m;
  const uint64_t want_priv[] = {0, 1}, want_inbox[] = {2};
  mbox_init(&b);
  fill_private(&b, 0, 1);
  push_seq(&b, 1, 2);
  m = mbox_close(&b);
  CHECK(chain_is(m, want_inbox, 1));
  CHECK(private_is(&b, want_priv, 2));
  mbox_free_list(m);
  drain_private(&b);
}

/* }================================================================== */

/* {==================================================================
** Many producers
** =================================================================== */

enum { NPRODUCERS = 8 };

/* 100,000 items per producer (about a second even under TSan); MBOX_TEST_ITEMS overrides. */
static uint64_t items_per_producer(void) {
  const char *s = getenv("MBOX_TEST_ITEMS");
  if (s != NULL && atoll(s) > 0) return (uint64_t)atoll(s);
  return 100000;
}

typedef struct producer {
  mbox *b;
  uint64_t id;            /* 1..NPRODUCERS, the `from` of its items */
  uint64_t n;             /* how many to push (the close run goes on until refused) */
  atomic_int *done;       /* producers finished */
  uint64_t produced;      /* items created */
  uint64_t refused;       /* pushes that failed */
  uint64_t first_refused; /* seq of the first refusal, or UINT64_MAX */
  int accepted_after_refusal;
  int nomem;
} producer;

/* Pushes seqs 0, 1, ... until n are pushed and (with until_refused) one has been refused. */
static void produce(producer *p, int until_refused) {
  for (uint64_t seq = 0; seq < p->n || (until_refused && p->refused == 0); seq++) {
    int rc = push_seq(p->b, p->id, seq);
    if (rc == MB_ENOMEM) {
      p->nomem = 1;
      break;
    }
    p->produced++;
    if (rc == 0) {
      p->accepted_after_refusal |= p->refused > 0;
      continue;
    }
    if (p->refused++ == 0) p->first_refused = seq;
  }
  atomic_fetch_add(p->done, 1);
}

static void *produce_n(void *ud) {
  produce(ud, 0);
  return NULL;
}

static void *produce_until_refused(void *ud) {
  produce(ud, 1);
  return NULL;
}

/* Per sender, the next seq the owner expects: in order, each exactly once. */
typedef struct tally {
  uint64_t next[NPRODUCERS + 1];
  uint64_t received;
  int bad;  /* an unknown sender, or a seq out of order, repeated or skipped */
} tally;

static void count(tally *t, const mbox_item *m) {
  if (m->from < 1 || m->from > NPRODUCERS || m->ref != t->next[m->from] ||
      m->len != sizeof m->ref || memcmp(m->data, &m->ref, sizeof m->ref) != 0) {
    t->bad = 1;
    return;
  }
  t->next[m->from]++;
  t->received++;
}

/* Starts the producers; returns how many threads started. */
static int start(pthread_t *th, producer *p, mbox *b, uint64_t n, atomic_int *done,
                 void *(*body)(void *)) {
  for (int i = 0; i < NPRODUCERS; i++) {
    p[i] = (producer){.b = b, .id = (uint64_t)i + 1, .n = n, .done = done,
                      .first_refused = UINT64_MAX};
    if (pthread_create(&th[i], NULL, body, &p[i]) != 0) return i;
  }
  return NPRODUCERS;
}

/*
** The owner takes while eight producers push, keeping everything on its private list, then
** checks the list: each sender's items in order, every item exactly once.
*/
TEST(many_producers_per_sender_fifo) {
  mbox b;
  pthread_t th[NPRODUCERS];
  producer p[NPRODUCERS];
  atomic_int done = 0;
  uint64_t n = items_per_producer(), takes = 0;
  tally t = {0};
  mbox_item *m;
  mbox_init(&b);
  if (start(th, p, &b, n, &done, produce_n) != NPRODUCERS) abort();
  for (;;) {
    int finished = atomic_load(&done) == NPRODUCERS;  /* read before the last take */
    if (!mbox_pending(&b)) {
      if (finished) break;
      sched_yield();
      continue;
    }
    m = mbox_take(&b);
    CHECK(m != NULL);  /* only the owner empties the inbox */
    append_chain(&b, m);
    takes++;
  }
  for (int i = 0; i < NPRODUCERS; i++) pthread_join(th[i], NULL);
  CHECK(mbox_take(&b) == NULL);
  CHECK(b.npriv == n * NPRODUCERS);
  while ((m = mbox_shift(&b)) != NULL) {
    count(&t, m);
    mbox_item_free(m);
  }
  CHECK(!t.bad);
  CHECK(t.received == n * NPRODUCERS);
  for (int i = 0; i < NPRODUCERS; i++) {
    CHECK(!p[i].nomem && p[i].refused == 0);
    CHECK(t.next[i + 1] == n);
  }
  CHECK(takes > 0);
}

/*
** The owner closes halfway through while producers are still pushing (each goes on until
** one of its pushes is refused). Every item must be taken, returned by the close, or
** refused to its producer; and once refused, a producer is refused for good.
*/
TEST(close_while_producers_push) {
  mbox b;
  pthread_t th[NPRODUCERS];
  producer p[NPRODUCERS];
  atomic_int done = 0;
  uint64_t n = items_per_producer(), produced = 0, refused = 0;
  tally t = {0};
  mbox_item *m;
  mbox_init(&b);
  if (start(th, p, &b, n, &done, produce_until_refused) != NPRODUCERS) abort();
  while (t.received < n * NPRODUCERS / 2) {
    m = mbox_take(&b);
    if (m == NULL) {
      sched_yield();
      continue;
    }
    append_chain(&b, m);  /* through the private list, as the owner would */
    while ((m = mbox_shift(&b)) != NULL) {
      count(&t, m);
      mbox_item_free(m);
    }
  }
  m = mbox_close(&b);
  while (m != NULL) {
    mbox_item *next = m->next;
    count(&t, m);
    mbox_item_free(m);
    m = next;
  }
  for (int i = 0; i < NPRODUCERS; i++) pthread_join(th[i], NULL);
  CHECK(atomic_load(&done) == NPRODUCERS);
  CHECK(!mbox_pending(&b));
  CHECK(b.npriv == 0);
  CHECK(!t.bad);
  for (int i = 0; i < NPRODUCERS; i++) {
    CHECK(!p[i].nomem);
    CHECK(p[i].refused > 0);
    CHECK(!p[i].accepted_after_refusal);
    /* received exactly the seqs before the first refusal, refused exactly the rest */
    CHECK(t.next[i + 1] == p[i].first_refused);
    CHECK(p[i].produced == p[i].first_refused + p[i].refused);
    produced += p[i].produced;
    refused += p[i].refused;
  }
  CHECK(produced == t.received + refused);
}

/* }================================================================== */

int main(void) {
  RUN(item_new_copies_data);
  RUN(item_new_empty_data);
  RUN(item_new_large_data);
  RUN(item_fields_survive_the_mailbox);
  RUN(free_list_frees_a_chain);
  RUN(take_gives_arrival_order);
  RUN(take_single_item);
  RUN(take_on_empty_returns_null);
  RUN(pending_reflects_the_inbox);
  RUN(push_after_take_comes_in_the_next_take);
  RUN(append_and_shift_keep_fifo);
  RUN(append_cuts_the_chain);
  RUN(append_after_shifting_the_last);
  RUN(interleaved_append_and_shift);
  RUN(remove_if_no_match);
  RUN(remove_if_removes_only_the_first_match);
  RUN(remove_if_head);
  RUN(remove_if_tail_then_append);
  RUN(remove_if_only_item_then_append);
  RUN(close_returns_everything_in_order);
  RUN(push_after_close_is_refused);
  RUN(close_on_empty_returns_null);
  RUN(close_leaves_the_private_list);
  RUN(many_producers_per_sender_fifo);
  RUN(close_while_producers_push);
  return test_summary();
}
