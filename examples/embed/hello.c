/* hello.c — the smallest Moonbeam host: a process sends the host a greeting. */
#include <stdio.h>

#include <lauxlib.h>
#include <moonbeam.h>

int main(void) {
  mb_runtime *rt = mb_new(NULL);    /* the defaults: a scheduler thread per core */
  lua_State *L = luaL_newstate();   /* the host's own state: messages arrive in it */
  mb_pid box;
  int rc;

  if (rt == NULL || L == NULL) {
    fprintf(stderr, "hello: out of memory\n");
    return 1;
  }
  if ((rc = mb_start(rt)) != 0) goto done;
  if ((rc = mb_mailbox_open(rt, &box)) != 0) goto done;     /* a pid the host receives on */
  if ((rc = mb_register(rt, "host", box)) != 0) goto done;  /* named, for the processes */
  rc = mb_spawn_string(rt, "process.send('host', 'hello from ' .. tostring(process.self()))",
                       NULL, NULL);
  if (rc != 0) goto done;
  if ((rc = mb_receive(rt, box, L, 5000)) != 0) goto done;  /* waits up to 5 s */
  printf("%s\n", lua_tostring(L, -1));
done:
  if (rc == 0) rc = mb_stop(rt);   /* ends every process, joins the threads */
  if (rc != 0) fprintf(stderr, "hello: %s\n", mb_strerror(rc));
  mb_free(rt);
  lua_close(L);
  return rc != 0;
}
