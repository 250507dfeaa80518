/*
** line.h — the shell's line reader (module "moonbeam.line" of the moonbeam command).
**
** Reading the terminal would block a scheduler thread, so a thread of its own reads
** stdin and sends each line to the asking process as a message {ref, line} ({ref} at end
** of input). It uses only the public API (mb_send), as any host program could.
**
** Lua: line.request(pid, ref, prompt) — print prompt, read one line, send it to pid.
*/
#ifndef LINE_H
#define LINE_H

#include <lua.h>

#include "../interp/moonbeam.h"

void line_init(mb_runtime *rt);   /* before the first request */
void line_stop(void);             /* stop the reader thread (before mb_stop) */
int luaopen_moonbeam_line(lua_State *L);

#endif
