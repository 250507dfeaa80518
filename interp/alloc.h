/*
** alloc.h — the allocator of processes' Lua heaps: size classes without headers, a cache
** per thread, chunks shared by every runtime in the program (alloc.c tells how).
*/
#ifndef ALLOC_H
#define ALLOC_H

#include <stddef.h>

/* A lua_Alloc without its ud: ptr, osize, nsize as Lua passes them. Any thread. */
void *alloc_lua(void *ptr, size_t osize, size_t nsize);

/* 1 when every block comes from malloc (AddressSanitizer builds), else 0. */
extern const int alloc_passthrough;

/* A runtime comes and goes: the last one to go gives every chunk back to the system. */
void alloc_retain(void);
void alloc_release(void);

#endif
