// The kernel's floor for the fan-out benchmark on this machine: what a C
// program doing nothing but the syscalls gets, with no WebSocket, no relay
// logic and no client parsing. One writer thread writes a burst of FRAMES
// frames of FRAME bytes (one write() per subscriber socket, as a corking
// relay does) to SUBS loopback TCP sockets; one reader thread drains them
// with epoll + read(). Like `loadgen fanout --max --window W`, the writer
// keeps at most W frames in flight per subscriber and refills with W/2.
//
//   cc -O2 -pthread -o loopback_floor loopback_floor.c
//   ./loopback_floor [subs=100] [window=32] [frame=134] [seconds=5]
//
// Prints deliveries/s (frames reaching a reader) and each thread's CPU.
//
//   ./loopback_floor echo [conns=100] [size=518] [seconds=5]
//
// The same for `loadgen echo`: an echo thread (epoll, read, write back) and
// a client thread keeping one message in flight per connection.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static int subs, window_frames, frame_size;
static int *readers;                      // client ends
static _Atomic long long received_bytes;  // total read by the reader
static _Atomic int stop;
static double reader_cpu;

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static double thread_cpu(void) {
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

// n connected loopback TCP pairs (TCP_NODELAY on both ends): near[i] is the
// connecting end, far[i] the accepted one.
static void socket_pairs(int n, int *near, int *far) {
    int one = 1;
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof a;
    if (bind(lfd, (void *)&a, sizeof a) || listen(lfd, 4096) || getsockname(lfd, (void *)&a, &alen)) {
        perror("listen");
        exit(1);
    }
    for (int i = 0; i < n; i++) {
        near[i] = socket(AF_INET, SOCK_STREAM, 0);
        if (connect(near[i], (void *)&a, sizeof a)) { perror("connect"); exit(1); }
        far[i] = accept(lfd, NULL, NULL);
        setsockopt(near[i], IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        setsockopt(far[i], IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    close(lfd);
}

// An epoll set watching fds[0..<n] for input, each event carrying its index.
static int epoll_over(const int *fds, int n) {
    int ep = epoll_create1(0);
    for (int i = 0; i < n; i++) {
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = i};
        epoll_ctl(ep, EPOLL_CTL_ADD, fds[i], &ev);
    }
    return ep;
}

// Until `stop`: one read per ready socket; `echo` writes what it read back.
// Returns this thread's CPU seconds.
static double drain(const int *fds, int n, int echo) {
    int ep = epoll_over(fds, n);
    static char buf[64 * 1024];
    struct epoll_event evs[256];
    double c0 = thread_cpu();
    while (!stop) {
        int k = epoll_wait(ep, evs, 256, 100);
        for (int i = 0; i < k; i++) {
            int fd = fds[evs[i].data.u32];
            ssize_t r = read(fd, buf, sizeof buf);
            if (r <= 0) continue;
            received_bytes += r;
            if (echo && write(fd, buf, r) != r) { perror("echo write"); exit(1); }
        }
    }
    return thread_cpu() - c0;
}

static void *reader(void *arg) {
    (void)arg;
    reader_cpu = drain(readers, subs, 0);
    return NULL;
}

static int *echo_fds;
static int echo_conns;

static void *echo_server(void *arg) {
    (void)arg;
    reader_cpu = drain(echo_fds, echo_conns, 1);
    return NULL;
}

static int echo_main(int conns, int size, double seconds) {
    echo_conns = conns;
    echo_fds = calloc(conns, sizeof(int));
    int *clients = calloc(conns, sizeof(int));
    long long *pending = calloc(conns, sizeof(long long));
    socket_pairs(conns, clients, echo_fds);
    pthread_t t;
    pthread_create(&t, NULL, echo_server, NULL);
    char *msg = malloc(size), *buf = malloc(64 * 1024);
    memset(msg, 'x', size);
    int ep = epoll_over(clients, conns);
    for (int i = 0; i < conns; i++) {
        if (write(clients[i], msg, size) != size) { perror("write"); return 1; }
        pending[i] = size;
    }
    long long trips = 0;
    struct epoll_event evs[256];
    double start = now(), c0 = thread_cpu();
    while (now() - start < seconds) {
        int n = epoll_wait(ep, evs, 256, 100);
        for (int k = 0; k < n; k++) {
            int i = evs[k].data.u32;
            ssize_t r = read(clients[i], buf, 64 * 1024);
            if (r <= 0) continue;
            pending[i] -= r;
            if (pending[i] == 0) {       // the whole echo is back: one round trip
                trips++;
                if (write(clients[i], msg, size) != size) { perror("write"); return 1; }
                pending[i] = size;
            }
        }
    }
    double elapsed = now() - start, client_cpu = thread_cpu() - c0;
    stop = 1;
    pthread_join(t, NULL);
    printf("echo conns %d size %d B: %.0f round trips/s, server CPU %.0f%% (%.2f µs/round trip), client CPU %.0f%%\n",
           conns, size, trips / elapsed, 100 * reader_cpu / elapsed, 1e6 * reader_cpu / trips, 100 * client_cpu / elapsed);
    return 0;
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "echo") == 0) {
        return echo_main(argc > 2 ? atoi(argv[2]) : 100, argc > 3 ? atoi(argv[3]) : 518,
                         argc > 4 ? atof(argv[4]) : 5);
    }
    subs = argc > 1 ? atoi(argv[1]) : 100;
    window_frames = argc > 2 ? atoi(argv[2]) : 32;
    frame_size = argc > 3 ? atoi(argv[3]) : 134;
    double seconds = argc > 4 ? atof(argv[4]) : 5;
    readers = calloc(subs, sizeof(int));
    int *writers = calloc(subs, sizeof(int));
    socket_pairs(subs, readers, writers);
    int burst = window_frames / 2 > 0 ? window_frames / 2 : 1;
    char *payload = malloc((size_t)burst * frame_size);
    memset(payload, '.', (size_t)burst * frame_size);
    pthread_t t;
    pthread_create(&t, NULL, reader, NULL);
    long long sent_frames = 0, writes = 0;
    double start = now(), writer_cpu = 0;   // CPU in the write loops only, not in the wait
    while (now() - start < seconds) {
        long long delivered_frames = received_bytes / frame_size;
        // In flight per subscriber, on average: refill once half the window arrived.
        if ((sent_frames * subs - delivered_frames) > (long long)(window_frames / 2) * subs) continue;
        double c = thread_cpu();
        for (int i = 0; i < subs; i++) {
            ssize_t left = (ssize_t)burst * frame_size;
            while (left > 0) {     // blocking sockets: the whole burst goes
                ssize_t w = write(writers[i], payload, left);
                if (w < 0 && errno != EINTR) { perror("write"); return 1; }
                if (w > 0) left -= w;
                writes++;
            }
        }
        writer_cpu += thread_cpu() - c;
        sent_frames += burst;
    }
    double elapsed = now() - start;
    stop = 1;
    pthread_join(t, NULL);
    long long frames = received_bytes / frame_size;
    printf("subs %d window %d frame %d B: %.0f deliveries/s, %.0f writes/s (%.1f frames per write), "
           "writer CPU %.0f%%, reader CPU %.0f%%, writer CPU µs/delivery %.3f\n",
           subs, window_frames, frame_size, frames / elapsed, writes / elapsed, (double)frames / writes,
           100 * writer_cpu / elapsed, 100 * reader_cpu / elapsed, 1e6 * writer_cpu / frames);
    return 0;
}
