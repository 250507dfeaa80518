/*
** pid.h — pids, refs and the other runtime values, carried in Lua as tagged light userdata.
**
** A term is a 64-bit value with bit 63 set (no user-space pointer has it), so it can never be
** confused with a C module's light userdata. Bits 62..61 give the kind:
**   pid      idx (bits 0..23) and gen (bits 24..55): slot in the process table and its reuse count
**   ref      a 61-bit counter, unique within a runtime
**   special  small constants (process.ANY)
** Equal values name the same thing, so terms compare with == and work as table keys.
*/
#ifndef PID_H
#define PID_H

#include <stdint.h>
#include <stdio.h>

#include "mbconf.h"

#define TERM_BIT      0x8000000000000000ull
#define TERM_KINDMASK 0xE000000000000000ull
#define TERM_PID      0x8000000000000000ull
#define TERM_REF      0xA000000000000000ull
#define TERM_SPECIAL  0xC000000000000000ull

#define PID_IDXMASK   ((1ull << MB_PID_IDX_BITS) - 1)

#define TERM_ANY      (TERM_SPECIAL | 1u)   /* process.ANY */
#define TERM_KILLED   (TERM_SPECIAL | 2u)   /* error value that unwinds a killed process */

static inline int term_is(uint64_t v) { return (v & TERM_BIT) != 0; }
static inline int term_ispid(uint64_t v) { return (v & TERM_KINDMASK) == TERM_PID; }
static inline int term_isref(uint64_t v) { return (v & TERM_KINDMASK) == TERM_REF; }

static inline uint64_t pid_make(uint32_t idx, uint32_t gen) {
  return TERM_PID | ((uint64_t)gen << MB_PID_IDX_BITS) | (idx & PID_IDXMASK);
}
/* <0.0.0>: the runtime itself, as the sender of the exit signals of mb_stop. */
#define PID_RUNTIME TERM_PID

static inline uint32_t pid_idx(uint64_t pid) { return (uint32_t)(pid & PID_IDXMASK); }
static inline uint32_t pid_gen(uint64_t pid) {
  return (uint32_t)((pid & ~TERM_KINDMASK) >> MB_PID_IDX_BITS);
}

static inline uint64_t ref_make(uint64_t counter) {
  return TERM_REF | (counter & ~TERM_KINDMASK);
}

/* Writes the printed form (<0.12.0>, #Ref<0.0.0.7>, process.ANY) into buf; returns its length. */
static inline int term_format(uint64_t v, char *buf, size_t size) {
  uint64_t n = v & ~TERM_KINDMASK;
  switch (v & TERM_KINDMASK) {
    case TERM_PID:
      return snprintf(buf, size, "<0.%u.%u>", pid_idx(v), pid_gen(v));
    case TERM_REF:
      return snprintf(buf, size, "#Ref<0.%u.%u.%u>", (unsigned)(n >> 42),
                      (unsigned)((n >> 21) & 0x1FFFFF), (unsigned)(n & 0x1FFFFF));
    default:
      if (v == TERM_ANY) return snprintf(buf, size, "process.ANY");
      if (v == TERM_KILLED) return snprintf(buf, size, "<process killed>");
      return snprintf(buf, size, "#Term<%llu>", (unsigned long long)n);
  }
}

#endif
