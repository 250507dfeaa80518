/*
** lnet.h — `net.core`, the C half of the `net` module (lualib/net.lua is the other half):
** the socket handle type and the non-blocking calls that net.lua builds blocking calls on.
**
** A handle is a full userdata holding a socket id (net.h), with the metatable registered
** as "moonbeam.socket" (net.lua sets its __index to the net module, so sock:recv() works).
** A process keeps one handle per id (a weak cache), so the handles of one socket are equal
** and work as table keys, wherever they came from (a call, or a message).
*/
#ifndef LNET_H
#define LNET_H

#include <stdint.h>
#include <lua.h>

int luaopen_net_core(lua_State *L);

/* 1 and the id if the value at idx is a socket handle; else 0. Never raises. */
int lnet_socket_id(lua_State *L, int idx, uint64_t *id);

/* Push the handle for socket id (loading the net module first if this process has not).
** May raise (out of memory, the module failing to load). */
void lnet_push_socket(lua_State *L, uint64_t id);

#endif
