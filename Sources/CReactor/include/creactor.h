// What Glibc does not export to Swift: epoll, eventfd, signalfd, accept4
// (behind _GNU_SOURCE), and a few macros that Swift cannot import.
#ifndef RELAY_CREACTOR_H
#define RELAY_CREACTOR_H

#include <stdint.h>
#include <signal.h>
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/uio.h>

struct sockaddr;

typedef struct creactor_event {
    uint32_t events;
    uint64_t data;
} creactor_event;

// Event bits, re-exported as plain constants.
extern const uint32_t CREACTOR_EPOLLIN;
extern const uint32_t CREACTOR_EPOLLOUT;
extern const uint32_t CREACTOR_EPOLLERR;
extern const uint32_t CREACTOR_EPOLLHUP;
extern const uint32_t CREACTOR_EPOLLRDHUP;
extern const int CREACTOR_IOV_MAX;

int creactor_epoll_create(void);
int creactor_epoll_add(int epfd, int fd, uint32_t events, uint64_t data);
int creactor_epoll_mod(int epfd, int fd, uint32_t events, uint64_t data);
int creactor_epoll_del(int epfd, int fd);
// Fills `out` (capacity `max`) with ready events; the struct is unpacked
// here so that Swift never sees epoll_event's packed layout.
// timeout_ns: < 0 waits for ever, 0 polls; epoll_pwait2 where the kernel
// has it (ns resolution), else epoll_wait rounded up to milliseconds.
int creactor_epoll_wait(int epfd, creactor_event *out, int max, int64_t timeout_ns);

int creactor_eventfd(void);
int creactor_eventfd_signal(int fd);
int creactor_eventfd_drain(int fd);

// Blocks SIGINT, SIGTERM, SIGHUP (and ignores SIGPIPE) in the calling
// thread; threads started afterwards inherit the mask.
int creactor_block_signals(void);
// A nonblocking signalfd for SIGINT, SIGTERM and SIGHUP.
int creactor_signalfd(void);
// Reads one signal from a signalfd: the signal number, 0 if none, -1 on error.
int creactor_signalfd_read(int fd);

// Names the calling thread (visible in /proc/self/task/*/comm, top, perf).
void creactor_set_thread_name(const char *name);

int creactor_accept4(int fd, struct sockaddr *addr, socklen_t *len);
int creactor_socket_nonblocking(int domain, int type);

#endif
