/*
** moonbeam.h — the public C API of the Moonbeam runtime (Erlang-style processes for Lua 5.4).
**
** A host creates a runtime (mb_new), may preload C libraries into it (mb_preload), starts
** its scheduler threads (mb_start), spawns Lua processes from files or strings, and talks to
** them with messages: mb_send copies a value of the host's own lua_State into a process's
** mailbox; a host mailbox (mb_mailbox_open) is a pid that processes send to and the host
** receives on (mb_receive). mb_stop ends every process and joins the threads; mb_free
** releases the rest. A program may run several runtimes, one after another or at once.
**
** Thread safety: every function may be called from any host thread, concurrently with any
** other, except mb_free, which must be the last call on a runtime and not race with any
** other call on it. In particular mb_send and mb_receive may be called from many host
** threads at once, also on the same mailbox (each message goes to one receiver). A
** lua_State handed to a call is used only during the call and only by that thread: the
** caller must not use the same state from two threads at once, as always with Lua.
**
** Ownership: a runtime owns everything it allocates; strings passed in are copied. Values
** handed to mb_send are copied before the call returns. mb_receive pushes a fresh copy.
**
** Errors: functions return 0 on success and a negative MB_E* code on failure (mb_new
** returns NULL and sets errno); mb_strerror gives the text. A call never aborts the program
** for bad input: a NULL runtime, a value that is not a pid, a stopped runtime are all
** reported.
*/
#ifndef MOONBEAM_H
#define MOONBEAM_H

#include <stddef.h>
#include <stdint.h>
#include <lua.h>

#if defined(MB_BUILDING) && defined(__GNUC__)
#define MB_API __attribute__((visibility("default")))
#else
#define MB_API
#endif

#define MB_VERSION "0.1.0"

/* The error list: name, value, text. One list makes the enum and mb_strerror. */
#define MB_ERRORS(X)                                                          \
  X(MB_EINVAL, -1, "invalid argument")                                        \
  X(MB_ENOMEM, -2, "out of memory")                                           \
  X(MB_ENOPROC, -3, "no such process")                                        \
  X(MB_ESTOPPED, -4, "runtime is stopped")                                    \
  X(MB_EUNCOPYABLE, -5, "value cannot be copied into a message")              \
  X(MB_ETIMEDOUT, -6, "timed out")                                            \
  X(MB_EBADMSG, -7, "malformed message")                                      \
  X(MB_ENAME, -8, "name is taken, or the process already has a name")         \
  X(MB_ELUA, -9, "Lua error")                                                 \
  X(MB_ETHREAD, -10, "could not start a thread")                              \
  X(MB_ESTARTED, -11, "runtime is already started")                           \
  X(MB_EBUSY, -12, "processes did not stop in time")                          \
  X(MB_ENOTSTARTED, -13, "runtime is not started")                            \
  X(MB_ENOTBOX, -14, "pid is not a host mailbox")                             \
  X(MB_EFILE, -15, "cannot read the file")

enum {
#define MB_ENUM_(name, value, text) name = value,
  MB_ERRORS(MB_ENUM_)
#undef MB_ENUM_
};

typedef struct mb_runtime mb_runtime;

/* A process identifier: an opaque value, equal for the same process, meaningful only in
** the runtime that made it. */
typedef uint64_t mb_pid;

/* A reference (a monitor's), likewise. */
typedef uint64_t mb_ref;

typedef struct mb_config {
  int schedulers;          /* scheduler threads, 1..1024; 0 = one per core */
  const char *lua_path;    /* package.path of processes the host spawns; NULL = from the
                              environment (LUA_PATH_5_4, LUA_PATH), as lua does */
  const char *lua_cpath;   /* package.cpath likewise (LUA_CPATH_5_4, LUA_CPATH) */
  int no_env;              /* ignore LUA_PATH/LUA_CPATH/LUA_INIT (lua -E) */
  int warnings;            /* start every process with warnings on (lua -W) */
  int no_halt;             /* mb_wait does not return when the first process ends */
  const char *progname;    /* prefix of the first process's error messages; NULL = "moonbeam" */
  int stop_timeout_ms;     /* how long mb_stop lets supervision trees shut down in order
                              before it kills what is left; 0 = 10000, -1 = no waiting */
} mb_config;

/* Fill cfg with the defaults (all zero/NULL). */
MB_API void mb_config_default(mb_config *cfg);

/* A new runtime, not started. cfg NULL = defaults. NULL on failure, with errno EINVAL (a
** field out of range) or ENOMEM. */
MB_API mb_runtime *mb_new(const mb_config *cfg);

/* Make `require(name)` in every process call open (as package.preload would). Only before
** mb_start (MB_ESTARTED after). A later preload of the same name replaces the earlier. */
MB_API int mb_preload(mb_runtime *rt, const char *name, lua_CFunction open);

/* Start the scheduler threads (MB_ESTARTED the second time, MB_ETHREAD on failure). */
MB_API int mb_start(mb_runtime *rt);

/* Spawn a process running a Lua file / a chunk of source (chunkname NULL = "=(string)").
** The first process the host spawns is the runtime's main process: when it ends, mb_wait
** returns (unless no_halt), with status 0 if it ended normally, 1 if it raised (its error
** and traceback are printed on stderr as lua prints them). Its compile errors show that
** way too; mb_spawn_file returns MB_EFILE at once when the file cannot be opened.
** *out (may be NULL) gets the pid. */
MB_API int mb_spawn_file(mb_runtime *rt, const char *path, mb_pid *out);
MB_API int mb_spawn_string(mb_runtime *rt, const char *chunk, const char *chunkname,
                           mb_pid *out);

/* Register pid under name, as process.register does (MB_ENOPROC if it is not alive,
** MB_ENAME if the name is taken or the process has one, MB_EINVAL for "undefined"). */
MB_API int mb_register(mb_runtime *rt, const char *name, mb_pid pid);

/* The pid registered as name, in *out; MB_ENOPROC if none is. */
MB_API int mb_whereis(mb_runtime *rt, const char *name, mb_pid *out);

/* Copy the value at idx of the host's own state L into a message to `to` (a pid or a host
** mailbox). MB_EUNCOPYABLE, with the reason pushed on L, if the value cannot be sent
** (nothing is delivered); MB_ENOPROC if `to` is not alive (the message is dropped). A nil
** value is MB_EINVAL. */
MB_API int mb_send(mb_runtime *rt, mb_pid to, lua_State *L, int idx);

/* Open a host mailbox: a pid that processes send to (and may link to, monitor, register,
** send exit signals to) and that the host receives on. It traps exits: a linked process's
** death comes as the message {"EXIT", pid, reason}; only exit(box, "kill") closes it. */
MB_API int mb_mailbox_open(mb_runtime *rt, mb_pid *out);

/* Take the oldest message of host mailbox box and push it on L. timeout_ms: 0 polls, -1
** waits forever. MB_ETIMEDOUT if nothing came in time; MB_ENOPROC if the mailbox is closed
** (or was killed), also while waiting; MB_ESTOPPED once mb_stop has begun, also while
** waiting; MB_ENOTBOX for the pid of a Lua process. A message that cannot be rebuilt in L
** (a module it names cannot be required there) is consumed: MB_ELUA with the error pushed. */
MB_API int mb_receive(mb_runtime *rt, mb_pid box, lua_State *L, int timeout_ms);

/* Close a host mailbox: it ends with reason "normal" (monitors get DOWN, links hear of it),
** waiting receivers return MB_ENOPROC, and messages still in it are dropped. */
MB_API int mb_mailbox_close(mb_runtime *rt, mb_pid box);

/* Monitor process pid from host mailbox box, as process.monitor does: when pid ends, box
** gets {"DOWN", ref, "process", pid, reason} (at once, with reason "noproc", if it is not
** alive). *ref (may be NULL) gets the monitor's ref. MB_EINVAL if pid is a host mailbox.
** mb_demonitor drops the monitor and any DOWN of it not yet received. */
MB_API int mb_monitor(mb_runtime *rt, mb_pid box, mb_pid pid, mb_ref *ref);
MB_API int mb_demonitor(mb_runtime *rt, mb_pid box, mb_ref ref);

/* A pid as a Lua value on the host's state, to put in messages; and back (MB_EINVAL if the
** value at idx is not a pid). In a host's state pids and refs are light userdata:
** compare them with lua_rawequal; mb_toref reads a ref (a DOWN message's, say). */
MB_API void mb_push_pid(lua_State *L, mb_runtime *rt, mb_pid pid);
MB_API int mb_topid(lua_State *L, int idx, mb_pid *out);
MB_API int mb_toref(lua_State *L, int idx, mb_ref *out);

/* The text of a pid, "<0.42.0>", into buf (size bytes, NUL-terminated); its length, or
** MB_EINVAL if pid is not one. */
MB_API int mb_pid_text(mb_pid pid, char *buf, size_t size);

/* Raise the error "interrupted!" in the process at its next reduction check (or in the
** receive it waits in), as lua does on Ctrl-C. */
MB_API int mb_interrupt(mb_runtime *rt, mb_pid pid);

/* Block until the runtime halts: a process called os.exit(status), or the main process
** ended. *exit_status (may be NULL) gets the status. MB_ENOTSTARTED before mb_start. */
MB_API int mb_wait(mb_runtime *rt, int *exit_status);

/*
** End every process and join the threads. First every supervision tree is shut down from
** the top, as OTP's init:stop does: each gen_server-based process whose parent is not one
** gets the exit signal "shutdown" from <0.0.0>, so supervisors stop their children in
** reverse start order and trapping servers run terminate (up to stop_timeout_ms). Then
** every process left is killed; links and monitors fire as usual. Host mailboxes close.
** Calls on the runtime afterwards return MB_ESTOPPED. MB_EBUSY if a process could not be
** stopped (stuck in a C call): its thread is left running and mb_free does nothing.
** Calling it again, or on a runtime never started, returns 0.
*/
MB_API int mb_stop(mb_runtime *rt);

/* Free the runtime (stopping it first if needed). NULL is ignored. */
MB_API void mb_free(mb_runtime *rt);

/* The text of an MB_E* code. */
MB_API const char *mb_strerror(int err);

#endif
