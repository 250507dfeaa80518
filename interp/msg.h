/*
** msg.h — copying Lua values between processes: encode into a flat blob, decode into
** another lua_State. Also a small builder for blobs made in C (EXIT and DOWN messages)
** and a printer for logs.
**
** Blob format (integers little-endian; varint = unsigned LEB128):
**
**   blob   := varint(n) value{n}                      n values, one object-id space
**   value  := 0x00                                    nil
**           | 0x01 | 0x02                             false | true
**           | 0x03 varint(zigzag(i))                  integer (zigzag: (i << 1) ^ (i >> 63))
**           | 0x04 f64                                float, the 8 raw IEEE bytes
**           | 0x05 varint(len) bytes                  string (binary-safe)
**           | 0x06 u32(narr) u32(nhash) value{narr} (value value){nhash}
**                                                     table; takes the next object id before
**                                                     its contents; array part is t[1..narr]
**                                                     (a nil there is a hole), then key/value pairs
**           | 0x07 varint(id)                         an object seen earlier in this blob
**           | 0x08 u64                                pid, ref or other term (see pid.h)
**           | 0x09 varint(len) bytecode u8(nups) upval{nups}
**                                                     Lua function (lua_dump, not stripped);
**                                                     takes the next object id before its upvalues
**           | 0x0A varint(len) name                   module table, found in the receiver as
**                                                     package.loaded[name] or require(name);
**                                                     takes the next object id
**           | 0x0B varint(len) mod varint(len) field  C function, found as package.loaded[mod][field]
**           | 0x0C varint(len) blob                   embedded blob of exactly one value, with its
**                                                     own object ids (lets C splice a reason in)
**           | 0x0D u64                                a socket (net.h): its id in the runtime's
**                                                     socket table; decoded as the receiver's
**                                                     handle for it (lnet.c)
**   upval  := 0x00 value                              an upvalue holding value
**           | 0x01                                    the receiver's global table (an _ENV upvalue)
**           | 0x02 varint(id) u8(n)                   shares upvalue n of function id
**
** Object ids count from 0 in order of appearance within one blob (or embedded blob).
**
** What the encoder does with each kind of value:
**   - tables: any depth, cycles and shared sub-tables preserved; metatables are not copied;
**   - Lua functions: bytecode plus upvalues; an upvalue named _ENV becomes 0x01 whatever it
**     holds; an upvalue holding a table that is package.loaded[name] becomes 0x0A name;
**     upvalues shared between copied functions stay shared;
**   - C functions: only those found as a field of a table in package.loaded (so `print`,
**     `string.format`, `lpeg.P` travel by name); any other is refused;
**   - sockets (the net module's handles) travel as their id (0x0D);
**   - refused: other userdata, threads, other C functions, light userdata that is not a term.
**     The error names the path: "msg.items[3].conn: userdata cannot be sent".
**
** Ownership: blobs handed out by msg_encode live in the encoder's scratch until its next
** use; the caller copies them. Decoding never keeps pointers into the blob.
*/
#ifndef MSG_H
#define MSG_H

#include <stddef.h>
#include <stdint.h>
#include <lua.h>

enum {
  MSG_NIL = 0x00, MSG_FALSE = 0x01, MSG_TRUE = 0x02, MSG_INT = 0x03, MSG_FLOAT = 0x04,
  MSG_STR = 0x05, MSG_TABLE = 0x06, MSG_OBJREF = 0x07, MSG_TERM = 0x08, MSG_FUNC = 0x09,
  MSG_MODULE = 0x0A, MSG_CFUNC = 0x0B, MSG_EMBED = 0x0C,
  MSG_SOCKET = 0x0D
};
enum { MSG_UV_VALUE = 0x00, MSG_UV_GLOBALS = 0x01, MSG_UV_JOIN = 0x02 };

/* A growable byte buffer (malloc'd). */
typedef struct msg_buf {
  unsigned char *p;
  size_t len, cap;
} msg_buf;

void msg_buf_init(msg_buf *b);
void msg_buf_free(msg_buf *b);
int msg_buf_reserve(msg_buf *b, size_t extra);           /* 0 or MB_ENOMEM */
int msg_buf_add(msg_buf *b, const void *p, size_t n);    /* 0 or MB_ENOMEM */

/*
** Builder: append pieces of a blob made without a Lua state. Start with msgb_count(n),
** then n values; a table header announces its counts up front. Each returns 0 or MB_ENOMEM.
*/
int msgb_count(msg_buf *b, unsigned n);
int msgb_nil(msg_buf *b);
int msgb_bool(msg_buf *b, int v);
int msgb_int(msg_buf *b, int64_t v);
int msgb_float(msg_buf *b, double v);
int msgb_str(msg_buf *b, const char *s, size_t len);
int msgb_term(msg_buf *b, uint64_t v);
int msgb_table(msg_buf *b, uint32_t narr, uint32_t nhash);
int msgb_socket(msg_buf *b, uint64_t id);                           /* a socket (net.h) */
int msgb_embed(msg_buf *b, const unsigned char *blob, size_t len);  /* blob of one value */

/* Encoder scratch (buffer, seen-object map, path stack), reused across calls. Not thread-safe:
** one per thread. */
typedef struct msg_enc msg_enc;
msg_enc *msg_enc_new(void);
void msg_enc_free(msg_enc *e);

/*
** Encode the n values at idx .. idx+n-1 of L as one blob. On success returns 0 and sets
** out and outlen to the blob (in e's scratch, valid until e is used again). If a value cannot be
** sent returns MB_EUNCOPYABLE and pushes the message "<path>: <kind> cannot be sent" on L,
** where the path starts at root (n == 1) or "<root> #k" (the k-th of n values).
** Returns MB_ENOMEM (pushing nothing) if the scratch cannot grow. May raise a Lua error
** (out of memory in L); e stays usable afterwards. Nesting counts a level per table,
** function or embedded blob; MB_MSG_MAXDEPTH levels are accepted, one more is refused.
*/
int msg_encode(lua_State *L, int idx, int n, msg_enc *e, const char *root,
               const unsigned char **out, size_t *outlen);

/*
** Decode a blob into L: pushes its values and returns how many (>= 0), or returns MB_EBADMSG,
** pushing nothing, when the blob is truncated or malformed. Bytecode is checked for
** structure only (Lua does not verify code): blobs must come from this runtime's encoder. May raise a Lua error (out of
** memory; a module named in the blob failing to load).
*/
int msg_decode(lua_State *L, const unsigned char *p, size_t len);

/* Appends a readable form of the blob's values (comma-separated), for logs:
** {"shutdown", <0.4.0>}. Long output is cut with "...". Returns 0 or an MB_E* code. */
int msg_format(const unsigned char *p, size_t len, msg_buf *out);

/* 1 if the blob holds exactly one value, the string s. */
int msg_is_string(const unsigned char *p, size_t len, const char *s);

#endif
