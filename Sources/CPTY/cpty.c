#define _GNU_SOURCE
#include "cpty.h"
#include <errno.h>
#include <fcntl.h>
#include <pty.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <unistd.h>

pid_t cpty_spawn(char *const argv[], unsigned short cols, unsigned short rows, int *master_fd) {
    struct winsize ws = { .ws_row = rows, .ws_col = cols };
    int master = -1;
    pid_t pid = forkpty(&master, NULL, NULL, &ws);
    if (pid < 0) return -1;
    if (pid == 0) {
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        for (int s = 1; s < NSIG; s++) signal(s, SIG_DFL);
        setenv("TERM", "xterm-256color", 1);
        execvp(argv[0], argv);
        _exit(127);
    }
    fcntl(master, F_SETFL, fcntl(master, F_GETFL) | O_NONBLOCK);
    fcntl(master, F_SETFD, FD_CLOEXEC);
    *master_fd = master;
    return pid;
}

int cpty_resize(int master_fd, unsigned short cols, unsigned short rows) {
    struct winsize ws = { .ws_row = rows, .ws_col = cols };
    return ioctl(master_fd, TIOCSWINSZ, &ws);
}
