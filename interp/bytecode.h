/*
** bytecode.h — a structural check of Lua 5.4 binary chunks (format 0, as lua_dump writes).
**
** Lua trusts binary chunks: lua_load allocates whatever counts a chunk declares, and 5.4.4
** writes past its upvalue array when a chunk lists more upvalue names than upvalues. The
** message decoder calls this before lua_load. It checks structure only, not code.
*/
#ifndef BYTECODE_H
#define BYTECODE_H

#include <stddef.h>

/* 0 if the chunk's counts all fit and nothing trails it, else MB_EBADMSG. */
int bytecode_check(const unsigned char *code, size_t len);

#endif
