/* bytecode.c — checks the structure of a Lua 5.4 binary chunk before lua_load trusts it. */
#include <stdint.h>

#include "bytecode.h"
#include "mbconf.h"
#include "moonbeam.h"

typedef struct rd {
  const unsigned char *p, *end;
} rd;

static size_t rd_left(const rd *r) { return (size_t)(r->end - r->p); }

static int rd_byte(rd *r, unsigned *v) {
  if (r->p == r->end) return MB_EBADMSG;
  *v = *r->p++;
  return 0;
}

/*
** The decoder walks the dump's structure itself and demands that every count fits the bytes
** left, that upvalue names match upvalues, and that nothing trails the chunk. The layout walked (Lua 5.4, format 0): header; the closure's upvalue count; then per
** function: source, two line numbers, three bytes, code, constants, upvalue descriptions,
** nested functions, debug info. Sizes are MSB-first 7-bit groups, the last byte with 0x80.
*/

typedef struct sizes {
  size_t instr, integer, number;  /* as the chunk's header declares them */
} sizes;

static int size(rd *r, uint64_t *v) {
  uint64_t x = 0;
  unsigned c;
  do {
    if (r->p == r->end || x > (UINT64_MAX >> 7)) return MB_EBADMSG;
    c = *r->p++;
    x = (x << 7) | (c & 0x7f);
  } while (!(c & 0x80));
  *v = x;
  return 0;
}

static int skip(rd *r, uint64_t n) {
  if (n > rd_left(r)) return MB_EBADMSG;
  r->p += n;
  return 0;
}

/* A count of items taking at least `unit` bytes each. */
static int count(rd *r, size_t unit, uint64_t *n) {
  if (size(r, n) || *n > INT32_MAX || *n * unit > rd_left(r)) return MB_EBADMSG;
  return 0;
}

static int string(rd *r) {
  uint64_t n;
  if (size(r, &n)) return MB_EBADMSG;
  return n ? skip(r, n - 1) : 0;
}

static int constants(rd *r, const sizes *z) {
  uint64_t n, i;
  unsigned tag;
  if (count(r, 1, &n)) return MB_EBADMSG;
  for (i = 0; i < n; i++) {
    if (rd_byte(r, &tag)) return MB_EBADMSG;
    switch (tag) {
      case 0x00: case 0x01: case 0x11: break;  /* nil, false, true */
      case 0x03: if (skip(r, z->integer)) return MB_EBADMSG; break;
      case 0x13: if (skip(r, z->number)) return MB_EBADMSG; break;
      case 0x04: case 0x14: if (string(r)) return MB_EBADMSG; break;  /* short, long */
      default: return MB_EBADMSG;
    }
  }
  return 0;
}

/* Line info, absolute line info, local variables, then upvalue names (none or all). */
static int debug(rd *r, uint64_t nups) {
  uint64_t n, i, v;
  if (count(r, 1, &n) || skip(r, n) || count(r, 2, &n)) return MB_EBADMSG;
  for (i = 0; i < n; i++)
    if (size(r, &v) || size(r, &v)) return MB_EBADMSG;
  if (count(r, 3, &n)) return MB_EBADMSG;
  for (i = 0; i < n; i++)
    if (string(r) || size(r, &v) || size(r, &v)) return MB_EBADMSG;
  if (count(r, 1, &n) || (n != 0 && n != nups)) return MB_EBADMSG;
  for (i = 0; i < n; i++)
    if (string(r)) return MB_EBADMSG;
  return 0;
}

static int function(rd *r, const sizes *z, int depth, uint64_t *nups) {
  uint64_t n, i, v;
  if (depth >= MB_MSG_MAXDEPTH || string(r) || size(r, &v) || size(r, &v) ||
      skip(r, 3))
    return MB_EBADMSG;
  if (count(r, z->instr, &n) || skip(r, n * z->instr)) return MB_EBADMSG;
  if (constants(r, z)) return MB_EBADMSG;
  if (count(r, 3, nups) || skip(r, *nups * 3) || count(r, 1, &n)) return MB_EBADMSG;
  for (i = 0; i < n; i++)
    if (function(r, z, depth + 1, &v)) return MB_EBADMSG;
  return debug(r, *nups);
}

/* The whole chunk; its closure must have as many upvalues as its main function describes. */
int bytecode_check(const unsigned char *code, size_t len) {
  sizes z;
  uint64_t nups;
  unsigned a, b, c, closure_nups;
  rd r;
  r.p = code;
  r.end = code + len;
  if (skip(&r, 12) || rd_byte(&r, &a) || rd_byte(&r, &b) || rd_byte(&r, &c)) return MB_EBADMSG;
  z.instr = a;
  z.integer = b;
  z.number = c;
  if (skip(&r, (uint64_t)b + c) || rd_byte(&r, &closure_nups)) return MB_EBADMSG;
  if (function(&r, &z, 0, &nups) || nups != closure_nups) return MB_EBADMSG;
  return r.p == r.end ? 0 : MB_EBADMSG;
}

