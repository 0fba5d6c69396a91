// Pseudo-terminals for `relay attach`: what Glibc's Swift module lacks.
#ifndef RELAY_CPTY_H
#define RELAY_CPTY_H
#include <sys/types.h>

// Starts argv[0] (PATH lookup) on a new pseudo-terminal of cols x rows.
// Returns the child's pid and stores the nonblocking master fd, or -1 with
// errno set. The child gets default signal dispositions and an empty mask.
pid_t cpty_spawn(char *const argv[], unsigned short cols, unsigned short rows, int *master_fd);

// TIOCSWINSZ on the master: the child sees SIGWINCH.
int cpty_resize(int master_fd, unsigned short cols, unsigned short rows);
#endif
