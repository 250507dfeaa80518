/*
** reg.h — registered names and aliases. A name has at most one process and a process at
** most one name. An alias is a ref that names its owner while active (as Erlang's alias/0):
** a message sent to an inactive alias is dropped, by the sender if the alias is already gone
** from the table, or by the owner when it takes the message from its inbox.
** One lock guards both tables and every proc->name. Threads: any.
*/
#ifndef REG_H
#define REG_H

#include <stddef.h>
#include <stdint.h>

#include "proc.h"

int reg_init(mb_runtime *rt);
void reg_free(mb_runtime *rt);

/* Register name for p. 0, or a reason for refusing it:
** REG_TAKEN (name in use), REG_HASNAME (p has a name), REG_DEAD (p is exiting). */
enum { REG_OK = 0, REG_TAKEN = 1, REG_HASNAME = 2, REG_DEAD = 3 };
int reg_add(mb_runtime *rt, const char *name, proc *p);
/* Unregister name: 1 if it was registered. */
int reg_remove(mb_runtime *rt, const char *name);
/* Drop p's name, if any (at death). */
void reg_remove_proc(mb_runtime *rt, proc *p);
/* The pid registered as name, or 0. */
uint64_t reg_whereis(mb_runtime *rt, const char *name);
/* The registered name of p, copied into buf (size n); 0 if it has none. */
int reg_name_of(mb_runtime *rt, proc *p, char *buf, size_t n);
/* A copy of all names and pids (NULL if out of memory); free with reg_snapshot_free. */
typedef struct reg_entry {
  char *name;
  uint64_t pid;
} reg_entry;
reg_entry *reg_snapshot(mb_runtime *rt, size_t *n);
void reg_snapshot_free(reg_entry *v, size_t n);

/* Aliases: add (0 or MB_ENOMEM), remove if owned by pid (1 if it was), owner (0: none). */
int reg_alias_add(mb_runtime *rt, uint64_t ref, uint64_t pid);
int reg_alias_remove(mb_runtime *rt, uint64_t ref, uint64_t pid);
uint64_t reg_alias_owner(mb_runtime *rt, uint64_t ref);

#endif
