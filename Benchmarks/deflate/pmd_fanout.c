/*
 * Fan-out driver for permessage-deflate: one runner sends a terminal trace's
 * chunks to one pod, N browsers that offer permessage-deflate (as every
 * browser does) count what arrives. `loadgen` cannot do this (its WebSocket
 * client offers no extension and sends stamped synthetic payloads), so
 * Benchmarks/compressionbench.py builds and runs this instead.
 *
 *   cc -O2 -o pmd_fanout Benchmarks/deflate/pmd_fanout.c -lz
 *   pmd_fanout --port P --runner-token T --browser-token T [--browsers 100]
 *              [--window 32 | --rate FRAMES_PER_S] [--warmup 1] [--duration 5]
 *              [--no-offer] [--verify] [--server-pid PID] [--json FILE] TRACE
 *
 * One thread, epoll, every socket non-blocking. The browsers connect first
 * (GET /browser/relay, `Sec-WebSocket-Extensions: permessage-deflate;
 * client_max_window_bits` unless --no-offer), then the runner (GET
 * /runner/relay, no offer: it sends uncompressed, as `relay attach` does).
 * Runner frames are `[0x02 Output][chunk]` for the trace's chunks in order,
 * over and over, masked with the key 0 (a valid mask that leaves the payload
 * as it is: the driver spends nothing on masking).
 *
 * --window W (closed loop, as `loadgen fanout --max`): up to W frames in
 * flight per browser on average; once half of them have arrived the runner
 * writes a burst up to W again. --rate R (open loop): R frames per second.
 *
 * Browsers only parse frame headers and skip payloads (no inflate), so the
 * driver's cost does not depend on compression; --verify makes browser 0
 * inflate every compressed message with zlib (as a browser does: raw
 * DEFLATE, 00 00 FF FF appended, a fresh stream per message) and compare it
 * with the trace's message, for a correctness run.
 *
 * Counted over the measured seconds (after --warmup): frames delivered to
 * browsers, the bytes their sockets read (WebSocket headers and payloads:
 * what crossed the wire above TCP), how many frames had RSV1 (compressed),
 * what the same frames would have been uncompressed, the relay's CPU
 * (/proc/PID/stat utime + stime) and the driver's own (getrusage). Writes
 * one JSON object (--json, else stdout).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

static const char MAGIC[] = "RELAYTRACE1\n";

enum state { CONNECTING, HANDSHAKE, OPEN, CLOSED };

typedef struct {
    int fd;
    int runner;
    int index;
    enum state st;
    int negotiated;
    char hs[8192];
    size_t hs_len;
    /* Frame parsing (server frames: unmasked). */
    unsigned char hdr[14];
    size_t hdr_len;
    uint64_t remaining;         /* payload bytes of the current frame still to come */
    int in_payload;
    int cur_rsv1, cur_opcode, cur_fin;
    /* Counters. */
    uint64_t frames, wire_bytes, payload_bytes, compressed, plain_wire, expected_bytes, other_frames;
    /* --verify (browser 0): the current message's payload. */
    unsigned char *msg;
    size_t msg_len, msg_cap;
    /* Runner: bytes waiting to be written. */
    unsigned char *out;
    size_t out_len, out_off, out_cap;
    int want_out;
} conn_t;

static struct {
    size_t n;
    unsigned char **msg;        /* [0x02][chunk] */
    size_t *len;
    unsigned char **frame;      /* the masked client frame of msg */
    size_t *flen;
} T;

static int epfd;
static uint64_t mismatches, errors_seen, closes;
static char last_error[256];
static z_stream inflater;
static unsigned char *inflate_out;
static size_t inflate_cap;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static uint32_t be32(const unsigned char *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void fail(const char *what) {
    errors_seen++;
    snprintf(last_error, sizeof last_error, "%s", what);
}

static void load(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) { fprintf(stderr, "%s: %s\n", path, strerror(errno)); exit(1); }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *d = malloc((size_t)n);
    if (fread(d, 1, (size_t)n, f) != (size_t)n) { fprintf(stderr, "short read\n"); exit(1); }
    fclose(f);
    size_t m = sizeof MAGIC - 1;
    if ((size_t)n < m + 4 || memcmp(d, MAGIC, m) != 0) { fprintf(stderr, "%s: not a relay trace\n", path); exit(1); }
    size_t off = m + 4 + be32(d + m);
    size_t cap = 4096;
    T.msg = malloc(cap * sizeof *T.msg); T.len = malloc(cap * sizeof *T.len);
    T.frame = malloc(cap * sizeof *T.frame); T.flen = malloc(cap * sizeof *T.flen);
    while (off + 4 <= (size_t)n) {
        size_t k = be32(d + off);
        off += 4;
        if (T.n == cap) {
            cap *= 2;
            T.msg = realloc(T.msg, cap * sizeof *T.msg); T.len = realloc(T.len, cap * sizeof *T.len);
            T.frame = realloc(T.frame, cap * sizeof *T.frame); T.flen = realloc(T.flen, cap * sizeof *T.flen);
        }
        size_t len = k + 1;
        unsigned char *msg = malloc(len);
        msg[0] = 0x02;
        memcpy(msg + 1, d + off, k);
        unsigned char *fr = malloc(len + 14);
        size_t h = 0;
        fr[h++] = 0x82;                         /* FIN, binary */
        if (len <= 125) fr[h++] = 0x80 | (unsigned char)len;
        else if (len <= 65535) { fr[h++] = 0x80 | 126; fr[h++] = (unsigned char)(len >> 8); fr[h++] = (unsigned char)len; }
        else { fr[h++] = 0x80 | 127; for (int s = 56; s >= 0; s -= 8) fr[h++] = (unsigned char)((uint64_t)len >> s); }
        memset(fr + h, 0, 4);                   /* mask key 0 */
        h += 4;
        memcpy(fr + h, msg, len);
        T.msg[T.n] = msg; T.len[T.n] = len; T.frame[T.n] = fr; T.flen[T.n] = h + len;
        T.n++;
        off += k;
    }
    free(d);
    if (T.n == 0) { fprintf(stderr, "empty trace\n"); exit(1); }
}

static size_t server_header(size_t len) { return len <= 125 ? 2 : len <= 65535 ? 4 : 10; }

static void watch(conn_t *c, int out) {
    struct epoll_event ev = {.events = EPOLLIN | (out ? EPOLLOUT : 0), .data.ptr = c};
    if (epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev) < 0) fail("epoll_ctl mod");
    c->want_out = out;
}

static int open_conn(conn_t *c, int port) {
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (c->fd < 0) { perror("socket"); exit(1); }
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(c->fd, (struct sockaddr *)&a, sizeof a) < 0 && errno != EINPROGRESS) { perror("connect"); return -1; }
    c->st = CONNECTING;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};
    epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &ev);
    c->want_out = 1;
    return 0;
}

static void queue_out(conn_t *c, const void *p, size_t n) {
    if (c->out_off == c->out_len) c->out_off = c->out_len = 0;
    if (c->out_len + n > c->out_cap) {
        if (c->out_off > 0) {
            memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
            c->out_len -= c->out_off;
            c->out_off = 0;
        }
        if (c->out_len + n > c->out_cap) {
            c->out_cap = (c->out_len + n) * 2;
            c->out = realloc(c->out, c->out_cap);
        }
    }
    memcpy(c->out + c->out_len, p, n);
    c->out_len += n;
}

static void flush_out(conn_t *c) {
    while (c->out_off < c->out_len) {
        ssize_t w = write(c->fd, c->out + c->out_off, c->out_len - c->out_off);
        if (w < 0) {
            if (errno == EAGAIN) break;
            if (errno == EINTR) continue;
            fail("runner write");
            c->st = CLOSED;
            return;
        }
        c->out_off += (size_t)w;
    }
    int pending = c->out_off < c->out_len;
    if (pending != c->want_out) watch(c, pending);
}

static void message_done(conn_t *c) {
    if (c->cur_rsv1) {
        /* A browser's inflate: raw DEFLATE, the tail 00 00 FF FF appended. */
        if (c->msg_len + 4 > c->msg_cap) { c->msg_cap = c->msg_len + 4; c->msg = realloc(c->msg, c->msg_cap); }
        memcpy(c->msg + c->msg_len, "\x00\x00\xff\xff", 4);
        inflateReset(&inflater);
        inflater.next_in = c->msg;
        inflater.avail_in = (uInt)(c->msg_len + 4);
        inflater.next_out = inflate_out;
        inflater.avail_out = (uInt)inflate_cap;
        int rc = inflate(&inflater, Z_SYNC_FLUSH);
        size_t got = inflate_cap - inflater.avail_out;
        size_t i = (size_t)((c->frames - 1) % T.n);
        if ((rc != Z_OK && rc != Z_STREAM_END) || got != T.len[i] || memcmp(inflate_out, T.msg[i], got) != 0) mismatches++;
    } else {
        size_t i = (size_t)((c->frames - 1) % T.n);
        if (c->msg_len != T.len[i] || memcmp(c->msg, T.msg[i], c->msg_len) != 0) mismatches++;
    }
    c->msg_len = 0;
}

/* Server frames in `p`: counted; payloads skipped (or kept for --verify). */
static void parse(conn_t *c, const unsigned char *p, size_t n, int verify) {
    while (n > 0) {
        if (!c->in_payload) {
            while (n > 0 && c->hdr_len < 2) { c->hdr[c->hdr_len++] = *p++; n--; }
            if (c->hdr_len < 2) return;
            size_t need = 2;
            unsigned l7 = c->hdr[1] & 0x7f;
            if (c->hdr[1] & 0x80) { fail("masked server frame"); }
            need += l7 == 126 ? 2 : l7 == 127 ? 8 : 0;
            while (n > 0 && c->hdr_len < need) { c->hdr[c->hdr_len++] = *p++; n--; }
            if (c->hdr_len < need) return;
            uint64_t len = l7;
            if (l7 == 126) len = (uint64_t)c->hdr[2] << 8 | c->hdr[3];
            else if (l7 == 127) { len = 0; for (int i = 0; i < 8; i++) len = len << 8 | c->hdr[2 + i]; }
            c->cur_opcode = c->hdr[0] & 0x0f;
            c->cur_fin = (c->hdr[0] & 0x80) != 0;
            if (c->cur_opcode != 0) c->cur_rsv1 = (c->hdr[0] & 0x40) != 0;
            c->remaining = len;
            c->in_payload = 1;
            c->hdr_len = 0;
            if (c->cur_opcode == 0x1 || c->cur_opcode == 0x2 || c->cur_opcode == 0x0) {
                if (!c->runner) {
                    c->payload_bytes += len;
                    if (c->cur_fin) {
                        c->frames++;
                        if (c->cur_rsv1) c->compressed++;
                        size_t i = (size_t)((c->frames - 1) % T.n);
                        c->expected_bytes += T.len[i];
                        c->plain_wire += server_header(T.len[i]) + T.len[i];
                    }
                }
            } else {
                c->other_frames++;
                if (c->cur_opcode == 0x8) closes++;
            }
        }
        size_t take = c->remaining < n ? (size_t)c->remaining : n;
        if (verify && c->index == 0 && !c->runner && (c->cur_opcode <= 2)) {
            if (c->msg_len + take > c->msg_cap) { c->msg_cap = (c->msg_len + take) * 2; c->msg = realloc(c->msg, c->msg_cap); }
            memcpy(c->msg + c->msg_len, p, take);
            c->msg_len += take;
        }
        p += take;
        n -= take;
        c->remaining -= take;
        if (c->remaining == 0) {
            c->in_payload = 0;
            if (verify && c->index == 0 && !c->runner && c->cur_opcode <= 2 && c->cur_fin) message_done(c);
        }
    }
}

static unsigned char rbuf[1 << 18];

static void on_event(conn_t *c, uint32_t ev, int port, const char *token, int offer, int verify) {
    if (c->st == CONNECTING && (ev & (EPOLLOUT | EPOLLERR | EPOLLHUP))) {
        int err = 0;
        socklen_t l = sizeof err;
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &l);
        if (err) { fail("connect refused"); c->st = CLOSED; close(c->fd); return; }
        char req[4096];
        int k = snprintf(req, sizeof req,
                         "GET /%s/relay?token=%s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                         "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n%s\r\n",
                         c->runner ? "runner" : "browser", token, port,
                         offer && !c->runner ? "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n" : "");
        queue_out(c, req, (size_t)k);
        c->st = HANDSHAKE;
        flush_out(c);
        return;
    }
    if (ev & EPOLLOUT) flush_out(c);
    if (!(ev & (EPOLLIN | EPOLLHUP | EPOLLERR))) return;
    for (;;) {
        ssize_t r = read(c->fd, rbuf, sizeof rbuf);
        if (r < 0) {
            if (errno == EAGAIN) return;
            if (errno == EINTR) continue;
            fail("read error");
            c->st = CLOSED;
            return;
        }
        if (r == 0) {
            if (c->st != CLOSED) { fail(c->runner ? "runner: EOF" : "browser: EOF"); }
            c->st = CLOSED;
            epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
            return;
        }
        const unsigned char *p = rbuf;
        size_t n = (size_t)r;
        if (c->st == HANDSHAKE) {
            size_t take = n < sizeof c->hs - 1 - c->hs_len ? n : sizeof c->hs - 1 - c->hs_len;
            memcpy(c->hs + c->hs_len, p, take);
            c->hs_len += take;
            c->hs[c->hs_len] = 0;
            char *end = strstr(c->hs, "\r\n\r\n");
            if (!end) continue;
            size_t head = (size_t)(end + 4 - c->hs);
            if (strncmp(c->hs, "HTTP/1.1 101", 12) != 0) {
                char msg[200];
                snprintf(msg, sizeof msg, "handshake refused: %.150s", c->hs);
                fail(msg);
                c->st = CLOSED;
                return;
            }
            c->hs[head] = 0;
            for (char *q = c->hs; *q; q++) *q = (char)(*q >= 'A' && *q <= 'Z' ? *q + 32 : *q);
            c->negotiated = strstr(c->hs, "sec-websocket-extensions:") && strstr(c->hs, "permessage-deflate");
            c->st = OPEN;
            /* Bytes after the head are the first frames. */
            size_t first = head - (c->hs_len - take);
            c->wire_bytes += n - first;
            parse(c, p + first, n - first, verify);
            continue;
        }
        c->wire_bytes += n;
        parse(c, p, n, verify);
    }
}

static double cpu_of(int pid) {
    if (pid <= 0) return 0;
    char path[64], buf[2048];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *q = strrchr(buf, ')');
    if (!q) return 0;
    unsigned long ut = 0, st = 0;
    /* fields after the command: state(3) ... utime(14) stime(15) */
    if (sscanf(q + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2) return 0;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static double self_cpu(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec * 1e-6 + ru.ru_stime.tv_sec + ru.ru_stime.tv_usec * 1e-6;
}

typedef struct {
    double t, server_cpu, client_cpu;
    uint64_t frames, wire, payload, compressed, plain_wire, expected, sent;
} snap_t;

static conn_t *conns;
static int nconn;
static uint64_t sent_frames;

static snap_t snap(int pid) {
    snap_t s = {.t = now(), .server_cpu = cpu_of(pid), .client_cpu = self_cpu(), .sent = sent_frames};
    for (int i = 1; i < nconn; i++) {
        s.frames += conns[i].frames; s.wire += conns[i].wire_bytes; s.payload += conns[i].payload_bytes;
        s.compressed += conns[i].compressed; s.plain_wire += conns[i].plain_wire; s.expected += conns[i].expected_bytes;
    }
    return s;
}

int main(int argc, char **argv) {
    int port = 0, browsers = 100, window = 32, offer = 1, verify = 0, pid = 0;
    double rate = 0, warmup = 1, duration = 5, connect_timeout = 30;
    const char *rtoken = NULL, *btoken = NULL, *json = NULL, *path = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--port") && v) { port = atoi(v); i++; }
        else if (!strcmp(a, "--runner-token") && v) { rtoken = v; i++; }
        else if (!strcmp(a, "--browser-token") && v) { btoken = v; i++; }
        else if (!strcmp(a, "--browsers") && v) { browsers = atoi(v); i++; }
        else if (!strcmp(a, "--window") && v) { window = atoi(v); i++; }
        else if (!strcmp(a, "--rate") && v) { rate = atof(v); i++; }
        else if (!strcmp(a, "--warmup") && v) { warmup = atof(v); i++; }
        else if (!strcmp(a, "--duration") && v) { duration = atof(v); i++; }
        else if (!strcmp(a, "--server-pid") && v) { pid = atoi(v); i++; }
        else if (!strcmp(a, "--json") && v) { json = v; i++; }
        else if (!strcmp(a, "--no-offer")) offer = 0;
        else if (!strcmp(a, "--verify")) verify = 1;
        else if (a[0] != '-') path = a;
        else { fprintf(stderr, "unknown option %s\n", a); return 2; }
    }
    if (!port || !rtoken || !btoken || !path || browsers < 1 || window < 1) {
        fprintf(stderr, "usage: %s --port P --runner-token T --browser-token T [--browsers N] [--window W | --rate R] "
                        "[--warmup S] [--duration S] [--no-offer] [--verify] [--server-pid PID] [--json FILE] TRACE\n", argv[0]);
        return 2;
    }
    load(path);
    inflateInit2(&inflater, -15);
    inflate_cap = 1 << 20;
    inflate_out = malloc(inflate_cap);
    epfd = epoll_create1(0);
    nconn = browsers + 1;
    conns = calloc((size_t)nconn, sizeof *conns);
    /* conns[0] is the runner; browsers first. */
    for (int i = 1; i < nconn; i++) {
        conns[i].index = i - 1;
        if (open_conn(&conns[i], port) < 0) return 1;
    }
    struct epoll_event evs[512];
    double deadline = now() + connect_timeout;
    int runner_started = 0;
    conn_t *runner = &conns[0];
    runner->runner = 1;
    double t_open = 0;
    /* Connect everyone. */
    for (;;) {
        int open = 0;
        for (int i = 1; i < nconn; i++) open += conns[i].st == OPEN;
        if (open == browsers && !runner_started) {
            if (open_conn(runner, port) < 0) return 1;
            runner_started = 1;
        }
        if (runner_started && runner->st == OPEN) break;
        if (now() > deadline || errors_seen) {
            fprintf(stderr, "connect failed: %d of %d browsers open; %s\n", open, browsers, last_error);
            break;
        }
        int n = epoll_wait(epfd, evs, 512, 100);
        for (int k = 0; k < n; k++) {
            conn_t *c = evs[k].data.ptr;
            on_event(c, evs[k].events, port, c->runner ? rtoken : btoken, offer, verify);
        }
    }
    t_open = now();
    int negotiated = 0;
    for (int i = 1; i < nconn; i++) negotiated += conns[i].negotiated;
    /* Run. */
    double t_measure = t_open + warmup, t_end = t_measure + duration;
    snap_t s0 = {0}, s1 = {0};
    int measuring = 0;
    size_t next = 0;            /* the trace index of the next frame */
    uint64_t limit = (uint64_t)window * (uint64_t)browsers;
    double t_rate0 = now();
    while (!errors_seen || runner->st == OPEN) {
        double t = now();
        if (!measuring && t >= t_measure) { s0 = snap(pid); measuring = 1; }
        if (measuring && t >= t_end) { s1 = snap(pid); break; }
        if (runner->st != OPEN) break;
        uint64_t received = 0;
        for (int i = 1; i < nconn; i++) received += conns[i].frames;
        if (rate > 0) {
            uint64_t due = (uint64_t)((t - t_rate0) * rate);
            /* Never more than a second's worth behind the socket. */
            while (sent_frames < due && runner->out_len - runner->out_off < (size_t)(rate * 4096)) {
                queue_out(runner, T.frame[next], T.flen[next]);
                next = (next + 1) % T.n;
                sent_frames++;
            }
        } else {
            uint64_t in_flight = sent_frames * (uint64_t)browsers - received;
            if (in_flight <= limit / 2 && runner->out_off == runner->out_len) {
                while (in_flight < limit) {
                    queue_out(runner, T.frame[next], T.flen[next]);
                    next = (next + 1) % T.n;
                    sent_frames++;
                    in_flight += (uint64_t)browsers;
                }
            }
        }
        if (runner->out_off < runner->out_len) flush_out(runner);
        int n = epoll_wait(epfd, evs, 512, rate > 0 ? 1 : 10);
        for (int k = 0; k < n; k++) {
            conn_t *c = evs[k].data.ptr;
            on_event(c, evs[k].events, port, c->runner ? rtoken : btoken, offer, verify);
        }
    }
    if (!measuring) s0 = snap(pid);
    if (s1.t == 0) s1 = snap(pid);
    double span = s1.t - s0.t;
    uint64_t deliveries = s1.frames - s0.frames;
    uint64_t minf = UINT64_MAX, maxf = 0;
    for (int i = 1; i < nconn; i++) {
        if (conns[i].frames < minf) minf = conns[i].frames;
        if (conns[i].frames > maxf) maxf = conns[i].frames;
    }
    double scpu = s1.server_cpu - s0.server_cpu, ccpu = s1.client_cpu - s0.client_cpu;
    FILE *f = json ? fopen(json, "w") : stdout;
    if (!f) { perror(json); return 1; }
    fprintf(f, "{\"ok\": %s, \"error\": \"%s\", \"errors\": %llu, \"browsers\": %d, \"negotiated\": %d, \"offer\": %s, "
               "\"window\": %d, \"rate\": %g, \"trace_messages\": %zu, \"measured_s\": %.4f, \"frames_sent\": %llu, "
               "\"deliveries\": %llu, \"deliveries_per_s\": %.1f, \"wire_bytes\": %llu, \"wire_bytes_per_delivery\": %.2f, "
               "\"payload_bytes\": %llu, \"message_bytes\": %llu, \"plain_wire_bytes\": %llu, \"compressed_frames\": %llu, "
               "\"wire_ratio\": %.5f, \"server_cpu_s\": %.3f, \"server_cpu_percent\": %.1f, \"server_cpu_us_per_delivery\": %.4f, "
               "\"client_cpu_s\": %.3f, \"client_cpu_percent\": %.1f, \"min_browser_frames\": %llu, \"max_browser_frames\": %llu, "
               "\"verify\": %s, \"mismatches\": %llu, \"closes\": %llu}\n",
            errors_seen || deliveries == 0 ? "false" : "true", last_error, (unsigned long long)errors_seen, browsers, negotiated,
            offer ? "true" : "false", rate > 0 ? 0 : window, rate, T.n, span,
            (unsigned long long)(s1.sent - s0.sent), (unsigned long long)deliveries, span > 0 ? deliveries / span : 0,
            (unsigned long long)(s1.wire - s0.wire), deliveries ? (double)(s1.wire - s0.wire) / (double)deliveries : 0,
            (unsigned long long)(s1.payload - s0.payload), (unsigned long long)(s1.expected - s0.expected),
            (unsigned long long)(s1.plain_wire - s0.plain_wire), (unsigned long long)(s1.compressed - s0.compressed),
            s1.plain_wire > s0.plain_wire ? (double)(s1.wire - s0.wire) / (double)(s1.plain_wire - s0.plain_wire) : 0,
            scpu, span > 0 ? 100 * scpu / span : 0, deliveries ? 1e6 * scpu / (double)deliveries : 0,
            ccpu, span > 0 ? 100 * ccpu / span : 0, (unsigned long long)minf, (unsigned long long)maxf,
            verify ? "true" : "false", (unsigned long long)mismatches, (unsigned long long)closes);
    if (json) fclose(f);
    return errors_seen || deliveries == 0 ? 1 : 0;
}
