#define _GNU_SOURCE
#include "creactor.h"
#include <errno.h>
#include <stdint.h>
#include <time.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/socket.h>

const uint32_t CREACTOR_EPOLLIN = EPOLLIN;
const uint32_t CREACTOR_EPOLLOUT = EPOLLOUT;
const uint32_t CREACTOR_EPOLLERR = EPOLLERR;
const uint32_t CREACTOR_EPOLLHUP = EPOLLHUP;
const uint32_t CREACTOR_EPOLLRDHUP = EPOLLRDHUP;
const int CREACTOR_IOV_MAX = IOV_MAX;

int creactor_epoll_create(void) { return epoll_create1(EPOLL_CLOEXEC); }

static int ctl(int epfd, int op, int fd, uint32_t events, uint64_t data) {
    struct epoll_event ev;
    memset(&ev, 0, sizeof ev);
    ev.events = events;
    ev.data.u64 = data;
    return epoll_ctl(epfd, op, fd, &ev);
}

int creactor_epoll_add(int epfd, int fd, uint32_t events, uint64_t data) {
    return ctl(epfd, EPOLL_CTL_ADD, fd, events, data);
}

int creactor_epoll_mod(int epfd, int fd, uint32_t events, uint64_t data) {
    return ctl(epfd, EPOLL_CTL_MOD, fd, events, data);
}

int creactor_epoll_del(int epfd, int fd) {
    struct epoll_event ev;
    memset(&ev, 0, sizeof ev);
    return epoll_ctl(epfd, EPOLL_CTL_DEL, fd, &ev);
}

#define CREACTOR_BATCH 256
// Set once epoll_pwait2 (Linux 5.11) turns out to be missing.
static _Atomic int no_pwait2;

int creactor_epoll_wait(int epfd, creactor_event *out, int max, int64_t timeout_ns) {
    struct epoll_event evs[CREACTOR_BATCH];
    if (max > CREACTOR_BATCH) max = CREACTOR_BATCH;
    int n;
    do {
        if (timeout_ns > 0 && !no_pwait2) {
            // Nanosecond timeouts: timers are not rounded up to milliseconds.
            struct timespec ts = { .tv_sec = timeout_ns / 1000000000, .tv_nsec = timeout_ns % 1000000000 };
            n = epoll_pwait2(epfd, evs, max, &ts, NULL);
            // ENOSYS: kernel before 5.11; EPERM: a seccomp profile that
            // predates the call (older container runtimes). Fall back for good.
            if (n < 0 && (errno == ENOSYS || errno == EPERM)) { no_pwait2 = 1; n = -1; errno = EINTR; }
        } else {
            int ms = timeout_ns <= 0 ? (int)(timeout_ns < 0 ? -1 : 0)
                   : (int)((timeout_ns + 999999) / 1000000 > INT32_MAX ? INT32_MAX : (timeout_ns + 999999) / 1000000);
            n = epoll_wait(epfd, evs, max, ms);
        }
    } while (n < 0 && errno == EINTR);
    for (int i = 0; i < n; i++) {
        out[i].events = evs[i].events;
        out[i].data = evs[i].data.u64;
    }
    return n;
}

int creactor_eventfd(void) { return eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC); }

int creactor_eventfd_signal(int fd) {
    uint64_t one = 1;
    ssize_t n;
    do { n = write(fd, &one, sizeof one); } while (n < 0 && errno == EINTR);
    // EAGAIN means the counter is saturated: the reader is woken anyway.
    return (n == sizeof one || (n < 0 && errno == EAGAIN)) ? 0 : -1;
}

int creactor_eventfd_drain(int fd) {
    uint64_t value;
    ssize_t n;
    do { n = read(fd, &value, sizeof value); } while (n < 0 && errno == EINTR);
    return (n == sizeof value || (n < 0 && errno == EAGAIN)) ? 0 : -1;
}

static void fill_set(sigset_t *set) {
    sigemptyset(set);
    sigaddset(set, SIGINT);
    sigaddset(set, SIGTERM);
    sigaddset(set, SIGHUP);
}

int creactor_block_signals(void) {
    sigset_t set;
    fill_set(&set);
    signal(SIGPIPE, SIG_IGN);
    return pthread_sigmask(SIG_BLOCK, &set, NULL);
}

int creactor_signalfd(void) {
    sigset_t set;
    fill_set(&set);
    return signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
}

int creactor_signalfd_read(int fd) {
    struct signalfd_siginfo info;
    ssize_t n;
    do { n = read(fd, &info, sizeof info); } while (n < 0 && errno == EINTR);
    if (n == sizeof info) return (int)info.ssi_signo;
    if (n < 0 && errno == EAGAIN) return 0;
    return -1;
}

int creactor_accept4(int fd, struct sockaddr *addr, socklen_t *len) {
    return accept4(fd, addr, len, SOCK_NONBLOCK | SOCK_CLOEXEC);
}

int creactor_socket_nonblocking(int domain, int type) {
    return socket(domain, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
}

void creactor_set_thread_name(const char *name) { pthread_setname_np(pthread_self(), name); }
