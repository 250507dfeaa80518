/*
** line.h — the shell's line reader (module "moonbeam.line" of the moonbeam command).
**
** Reading the terminal would block a scheduler thread, so a thread of its own reads
** stdin and sends each line to the asking process as a message. It uses only the public
** API (mb_send, mb_interrupt), as any host program could. It is the only code that reads
** the terminal's input.
**
** On a terminal it edits lines with GNU readline (callback interface, driven by poll on
** stdin, a wake pipe and the signal pipe): history in ~/.moonbeam_history (1000 lines),
** tab completion from the candidates sent with the request. Otherwise it reads plain
** lines, so the shell can be scripted through a pipe.
**
** Ctrl-C: main.c's SIGINT handler writes 'i' to the signal pipe ('w' for SIGWINCH). While
** a line is being read, the line is dropped and the request answered {ref, false}; while
** no request waits (the shell evaluates), the last requester (before any request: the
** process given to line_start) gets mb_interrupt, i.e. the error "interrupted!".
**
** Lua: line.request(pid, ref, prompt, [candidates]) — show prompt, read one line, send
** {ref, line} to pid; {ref} at end of input; {ref, false} when Ctrl-C dropped the line.
** candidates: an array of strings for completion (replaced at each request). A request
** made while another is unanswered replaces it (the old one is never answered).
*/
#ifndef LINE_H
#define LINE_H

#include <lua.h>

#include "../interp/moonbeam.h"

/* Before the first request. sigfd: read end of the signal pipe, or -1 (no Ctrl-C). */
void line_init(mb_runtime *rt, int sigfd);
/* Start the reader now (REPL mode), so Ctrl-C reaches `pid` before the shell asks. */
void line_start(mb_pid pid);
/* Stop the reader thread (before mb_stop): restores the terminal, writes the history. */
void line_stop(void);
int luaopen_moonbeam_line(lua_State *L);

#endif
