/*
** moonbeam.h — the public C API of the Moonbeam runtime (Erlang-style processes for Lua 5.4).
**
** Thread safety: every function here may be called from any host thread, concurrently,
** unless its comment says otherwise. mb_free must be the last call on a runtime and must
** not race with any other call on it.
**
** Ownership: a runtime owns everything it allocates. Values handed to mb_send are copied
** before the call returns; the caller keeps its lua_State and its values.
**
** Errors: functions return 0 (or a count) on success and a negative MB_E* code on failure;
** mb_strerror gives the text.
*/
#ifndef MOONBEAM_H
#define MOONBEAM_H

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
  X(MB_ENAME, -8, "name is already registered or invalid")                    \
  X(MB_ELUA, -9, "Lua error")                                                 \
  X(MB_ETHREAD, -10, "could not start a thread")                              \
  X(MB_ESTATE, -11, "runtime is not in the right state for this call")        \
  X(MB_EBUSY, -12, "processes did not stop in time")

enum {
#define MB_ENUM_(name, value, text) name = value,
  MB_ERRORS(MB_ENUM_)
#undef MB_ENUM_
};

typedef struct mb_runtime mb_runtime;

/* A process identifier: an opaque value, equal for the same process. */
typedef uint64_t mb_pid;

typedef struct mb_config {
  int schedulers;          /* scheduler threads; 0 = one per core */
  const char *lua_path;    /* package.path of the first process; NULL = from the environment */
  const char *lua_cpath;   /* package.cpath of the first process; NULL = from the environment */
  int no_env;              /* ignore LUA_PATH/LUA_CPATH/LUA_INIT (lua -E) */
  int warnings;            /* start every process with warnings on (lua -W) */
  int no_halt;             /* keep running when the main process ends */
  const char *progname;    /* prefix of the main process's error messages; NULL = "moonbeam" */
} mb_config;

MB_API void mb_config_default(mb_config *cfg);

MB_API mb_runtime *mb_new(const mb_config *cfg);   /* cfg NULL = defaults; NULL on failure */
MB_API int mb_start(mb_runtime *rt);                /* starts the schedulers */
MB_API int mb_preload(mb_runtime *rt, const char *name, lua_CFunction open);
MB_API int mb_spawn_file(mb_runtime *rt, const char *path, mb_pid *out);
MB_API int mb_spawn_string(mb_runtime *rt, const char *chunk, const char *chunkname,
                           mb_pid *out);
MB_API int mb_register(mb_runtime *rt, const char *name, mb_pid pid);
/* Copy the value at idx of the host's own state L into a message to `to`. MB_EUNCOPYABLE
** (and the reason on L's top) if it cannot be sent; a dead `to` drops it, as in Erlang. */
MB_API int mb_send(mb_runtime *rt, mb_pid to, lua_State *L, int idx);
/* A pid as a Lua value on the host's state, to put in messages; and back. */
MB_API void mb_push_pid(lua_State *L, mb_runtime *rt, mb_pid pid);
/* Raise the error "interrupted!" in the process at its next reduction check (or in the
** receive it waits in), as lua does on Ctrl-C. */
MB_API int mb_interrupt(mb_runtime *rt, mb_pid pid);
MB_API int mb_topid(lua_State *L, int idx, mb_pid *out);
MB_API int mb_wait(mb_runtime *rt, int *exit_status);  /* until halt or the main process ends */
MB_API int mb_stop(mb_runtime *rt);
MB_API void mb_free(mb_runtime *rt);
MB_API const char *mb_strerror(int err);

#endif
