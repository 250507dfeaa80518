/*
** test.h — a minimal unit-test harness for the C tests. Each test binary defines its tests
** with TEST(name) { ... }, lists them in main with RUN(name), and ends with
** return test_summary(); which prints "N passed, M failed".
*/
#ifndef TEST_H
#define TEST_H

#include <stdio.h>
#include <string.h>

static int test_passed, test_failed, test_cur_failed;
static const char *test_cur_name;

#define TEST(name) static void test_##name(void)

#define RUN(name)                                                     \
  do {                                                                \
    test_cur_name = #name;                                            \
    test_cur_failed = 0;                                              \
    test_##name();                                                    \
    if (test_cur_failed) test_failed++;                               \
    else { test_passed++; printf("ok %s\n", #name); }                 \
    fflush(stdout);                                                   \
  } while (0)

#define CHECK(cond)                                                   \
  do {                                                                \
    if (!(cond)) {                                                    \
      printf("FAIL %s: %s:%d: %s\n", test_cur_name, __FILE__,         \
             __LINE__, #cond);                                        \
      test_cur_failed = 1;                                            \
    }                                                                 \
  } while (0)

#define CHECK_STR(got, want)                                          \
  do {                                                                \
    const char *g_ = (got), *w_ = (want);                             \
    if (!g_ || strcmp(g_, w_) != 0) {                                 \
      printf("FAIL %s: %s:%d: got \"%s\", want \"%s\"\n",             \
             test_cur_name, __FILE__, __LINE__, g_ ? g_ : "(null)", w_); \
      test_cur_failed = 1;                                            \
    }                                                                 \
  } while (0)

static inline int test_summary(void) {
  printf("%d passed, %d failed\n", test_passed, test_failed);
  return test_failed ? 1 : 0;
}

#endif
