// A reference for the fan-out benchmark: the least a WebSocket fan-out server
// has to do for `loadgen fanout --target relay`, written plainly in C, so
// `compare.py` can show the relay beside the cost of the same work done with
// no abstraction (and beside `floor/loopback_floor.c`, the same syscalls with
// no protocol at all).
//
//   cc -O2 -Wall -o .build/fanout_server Benchmarks/reference/fanout_server.c -lcrypto
//   .build/fanout_server PORT          (listens on 127.0.0.1:PORT)
//
// What it does, as the relay does it:
// - one thread, epoll (level-triggered), nonblocking sockets, TCP_NODELAY;
//   one read (at most 64 KiB) per readiness event;
// - HTTP/1.1 upgrade on `/runner/relay?token=…` or `/browser/relay?token=…`
//   (also under a `/relay` prefix); the pod is the token's `pod_key` claim;
// - a runner's masked client frames are unmasked; each complete binary (or
//   text) message is encoded ONCE as an unmasked server frame into a
//   refcounted buffer (a per-pod arena of 64 KiB chunks, so consecutive
//   frames lie one after another in memory), and a reference (buffer,
//   offset, length) is queued to every browser of the pod. A browser's
//   messages (Input, Resize, …) go to the pod's runner the same way;
// - output is corked: queued during the epoll turn, and each connection
//   with something queued is written at the end of the turn with one
//   `writev` of up to IOV_MAX iovecs (references that continue one another
//   in memory share an iovec, and are merged already when queued); a short
//   write arms EPOLLOUT. No write per message;
// - Ping is answered with Pong, Close with Close (then the socket closes);
//   a second runner for a pod replaces the first (which gets Close 1000).
//
// Simplifications (it is a reference for the minimum cost, not a relay):
// - the JWT's signature, expiry and issuer are NOT verified: the payload
//   segment is base64url-decoded and `pod_key` is pulled out of the JSON by
//   a string search;
// - the upgrade request must arrive within 16 KiB; only the key header is
//   checked (no Origin, Version or Upgrade checks); no percent-decoding of
//   the token;
// - no replay buffer, snapshots, sequence numbers, extension frames (the
//   relay's Position/Lagged/Presence), runner-disconnected notices,
//   presence, browser limits per pod, keepalive pings or idle timeouts;
// - no UTF-8 validation of text messages, no check of reserved bits;
// - the only slow-consumer policy is a bound: a connection with more than
//   64 MiB queued is closed;
// - messages up to 4 MiB (the relay's default limit); larger ones close
//   the connection.
//
// Prints nothing per message; SIGTERM or SIGINT ends it cleanly.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>
#include <openssl/evp.h>
#include <openssl/sha.h>

#ifndef IOV_MAX
#define IOV_MAX 1024
#endif

#define MAX_HEAD (16 * 1024)          // upgrade request
#define READ_MAX (64 * 1024)          // one read per readiness event
#define ARENA_CHUNK (64 * 1024)       // frames of a pod are built in chunks of this
#define MAX_MESSAGE (4 << 20)         // the relay's default message limit
#define OUT_LIMIT (64u << 20)         // queued bytes before a connection is closed
#define MAX_POD_KEY 256
#define POD_BUCKETS 4096

// ---------------------------------------------------------------------------
// Refcounted buffers

struct buf {
    uint32_t refs;
    uint32_t cap;
    uint32_t used;
    unsigned char data[];
};

static struct buf *buf_new(size_t cap) {
    struct buf *b = malloc(sizeof *b + cap);
    if (!b) { perror("malloc"); exit(1); }
    b->refs = 1;
    b->cap = (uint32_t)cap;
    b->used = 0;
    return b;
}

static void buf_release(struct buf *b) {
    if (--b->refs == 0) free(b);
}

// Room for `n` bytes in the arena `*a`: returns the buffer with one extra
// reference (the caller's, released once it has queued its references) and
// the offset of the room. A frame larger than a chunk gets a buffer of its own.
static struct buf *arena_alloc(struct buf **a, size_t n, uint32_t *off) {
    if (n > ARENA_CHUNK) {
        struct buf *b = buf_new(n);
        b->used = (uint32_t)n;
        *off = 0;
        return b;
    }
    if (*a == NULL || (*a)->cap - (*a)->used < n) {
        if (*a) buf_release(*a);
        *a = buf_new(ARENA_CHUNK);    // the arena's own reference
    }
    struct buf *b = *a;
    *off = b->used;
    b->used += (uint32_t)n;
    b->refs++;
    return b;
}

// ---------------------------------------------------------------------------
// Connections and pods

struct ref {
    struct buf *b;
    uint32_t off, len;
};

enum state { HANDSHAKE, OPEN, CLOSING, DEAD };
enum role { NONE, RUNNER, BROWSER };

struct pod;

struct conn {
    int fd;
    enum state state;
    enum role role;
    struct pod *pod;
    uint32_t index;                   // in pod->browsers
    // Input kept between reads: a partial frame (or upgrade request).
    unsigned char *in;
    size_t in_len, in_cap;
    // A fragmented message being assembled (already unmasked).
    unsigned char *msg;
    size_t msg_len, msg_cap;
    int msg_op;                       // 0: none in progress
    // Outbound queue: a ring of references (capacity a power of two).
    struct ref *q;
    uint32_t qhead, qcount, qcap;
    size_t qbytes;
    int dirty;                        // in the dirty list of this turn
    int out_armed;                    // EPOLLOUT in the interest set
    struct conn *prev, *next;         // all connections
    struct conn *next_dead;
};

struct pod {
    char key[MAX_POD_KEY + 1];
    uint64_t hash;
    struct pod *next;                 // bucket chain
    struct conn *runner;
    struct conn **browsers;
    uint32_t nbrowsers, cap;
    struct buf *out_arena;            // runner → browsers frames
    struct buf *in_arena;             // browsers → runner frames
};

static int ep;
static struct pod *pods[POD_BUCKETS];
static struct conn *all_conns;
static struct conn *dead;             // freed at the end of the turn
static struct conn **dirty;
static size_t ndirty, dirty_cap;
static unsigned char scratch[READ_MAX];
static struct iovec iov[IOV_MAX];
static volatile sig_atomic_t stopping;

static uint64_t hash_key(const char *s) {
    uint64_t h = 1469598103934665603ull;       // FNV-1a
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static struct pod *pod_get(const char *key) {
    uint64_t h = hash_key(key);
    struct pod **slot = &pods[h % POD_BUCKETS];
    for (struct pod *p = *slot; p; p = p->next)
        if (p->hash == h && strcmp(p->key, key) == 0) return p;
    struct pod *p = calloc(1, sizeof *p);
    if (!p) { perror("calloc"); exit(1); }
    strcpy(p->key, key);
    p->hash = h;
    p->next = *slot;
    *slot = p;
    return p;
}

static void pod_free_if_empty(struct pod *p) {
    if (p->runner || p->nbrowsers) return;
    struct pod **slot = &pods[p->hash % POD_BUCKETS];
    while (*slot != p) slot = &(*slot)->next;
    *slot = p->next;
    if (p->out_arena) buf_release(p->out_arena);
    if (p->in_arena) buf_release(p->in_arena);
    free(p->browsers);
    free(p);
}

static void set_interest(struct conn *c, int out) {
    struct epoll_event ev = {.events = EPOLLIN | (out ? EPOLLOUT : 0), .data.ptr = c};
    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
    c->out_armed = out;
}

static void mark_dirty(struct conn *c) {
    if (c->dirty) return;
    if (ndirty == dirty_cap) {
        dirty_cap = dirty_cap ? dirty_cap * 2 : 1024;
        dirty = realloc(dirty, dirty_cap * sizeof *dirty);
        if (!dirty) { perror("realloc"); exit(1); }
    }
    c->dirty = 1;
    dirty[ndirty++] = c;
}

static void conn_kill(struct conn *c) {
    if (c->state == DEAD) return;
    struct pod *p = c->pod;
    if (p) {
        if (c->role == RUNNER && p->runner == c) {
            p->runner = NULL;
        } else if (c->role == BROWSER) {
            struct conn *last = p->browsers[--p->nbrowsers];
            p->browsers[c->index] = last;
            last->index = c->index;
        }
        c->pod = NULL;
        pod_free_if_empty(p);
    }
    for (uint32_t i = 0; i < c->qcount; i++) buf_release(c->q[(c->qhead + i) & (c->qcap - 1)].b);
    free(c->q);
    c->q = NULL;
    c->qcount = 0;
    c->qbytes = 0;
    free(c->in);
    c->in = NULL;
    free(c->msg);
    c->msg = NULL;
    close(c->fd);                     // also leaves the epoll set
    c->state = DEAD;
    if (c->prev) c->prev->next = c->next; else all_conns = c->next;
    if (c->next) c->next->prev = c->prev;
    // Events of this turn and the dirty list may still name it.
    c->next_dead = dead;
    dead = c;
}

// Queues a reference to `len` bytes at `off` in `b`, merged into the last
// reference when it continues it in the same buffer.
static void enqueue(struct conn *c, struct buf *b, uint32_t off, uint32_t len) {
    if (c->state != OPEN && c->state != HANDSHAKE) return;
    if (c->qbytes > OUT_LIMIT) {      // the one slow-consumer policy: a bound
        conn_kill(c);
        return;
    }
    if (c->qcount) {
        struct ref *t = &c->q[(c->qhead + c->qcount - 1) & (c->qcap - 1)];
        if (t->b == b && t->off + t->len == off) {
            t->len += len;
            c->qbytes += len;
            mark_dirty(c);
            return;
        }
    }
    if (c->qcount == c->qcap) {
        uint32_t ncap = c->qcap ? c->qcap * 2 : 8;
        struct ref *nq = malloc(ncap * sizeof *nq);
        if (!nq) { perror("malloc"); exit(1); }
        for (uint32_t i = 0; i < c->qcount; i++) nq[i] = c->q[(c->qhead + i) & (c->qcap - 1)];
        free(c->q);
        c->q = nq;
        c->qcap = ncap;
        c->qhead = 0;
    }
    c->q[(c->qhead + c->qcount) & (c->qcap - 1)] = (struct ref){b, off, len};
    c->qcount++;
    c->qbytes += len;
    b->refs++;
    mark_dirty(c);
}

// Queues a copy of `len` bytes (handshake responses, control frames).
static void enqueue_copy(struct conn *c, const void *data, size_t len) {
    struct buf *b = buf_new(len);
    memcpy(b->data, data, len);
    b->used = (uint32_t)len;
    enqueue(c, b, 0, (uint32_t)len);
    buf_release(b);
}

// Writes what is queued: one writev of up to IOV_MAX iovecs (another only
// if that one was cut by IOV_MAX and fully taken). Arms EPOLLOUT on a short
// write, disarms it once drained.
static void flush(struct conn *c) {
    while (c->qcount) {
        int n = 0;
        size_t requested = 0;
        for (uint32_t i = 0; i < c->qcount; i++) {
            struct ref *r = &c->q[(c->qhead + i) & (c->qcap - 1)];
            unsigned char *p = r->b->data + r->off;
            if (n > 0 && (unsigned char *)iov[n - 1].iov_base + iov[n - 1].iov_len == p) {
                iov[n - 1].iov_len += r->len;
            } else {
                if (n == IOV_MAX) break;
                iov[n].iov_base = p;
                iov[n].iov_len = r->len;
                n++;
            }
            requested += r->len;
        }
        ssize_t w = writev(c->fd, iov, n);
        if (w < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) break;
            if (errno == EINTR) continue;
            conn_kill(c);
            return;
        }
        size_t left = (size_t)w;
        c->qbytes -= left;
        while (left) {
            struct ref *r = &c->q[c->qhead];
            if (r->len <= left) {
                left -= r->len;
                buf_release(r->b);
                c->qhead = (c->qhead + 1) & (c->qcap - 1);
                c->qcount--;
            } else {
                r->off += (uint32_t)left;
                r->len -= (uint32_t)left;
                left = 0;
            }
        }
        if ((size_t)w < requested) break;   // the socket buffer is full
    }
    if (c->qcount) {
        if (!c->out_armed) set_interest(c, 1);
        return;
    }
    if (c->state == CLOSING) {              // Close (or an error response) is out
        conn_kill(c);
        return;
    }
    if (c->out_armed) set_interest(c, 0);
}

// ---------------------------------------------------------------------------
// WebSocket frames

static size_t header_size(size_t len) { return len < 126 ? 2 : len < 65536 ? 4 : 10; }

static size_t write_header(unsigned char *h, int opcode, size_t len) {
    h[0] = 0x80 | (unsigned char)opcode;
    if (len < 126) {
        h[1] = (unsigned char)len;
        return 2;
    }
    if (len < 65536) {
        h[1] = 126;
        h[2] = (unsigned char)(len >> 8);
        h[3] = (unsigned char)len;
        return 4;
    }
    h[1] = 127;
    for (int i = 0; i < 8; i++) h[2 + i] = (unsigned char)((uint64_t)len >> (56 - 8 * i));
    return 10;
}

// dst = src XOR the 4-byte mask (8 bytes at a time).
static void unmask_copy(unsigned char *dst, const unsigned char *src, size_t len, const unsigned char mask[4]) {
    uint32_t m32;
    memcpy(&m32, mask, 4);
    uint64_t m64 = ((uint64_t)m32 << 32) | m32;
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        uint64_t x;
        memcpy(&x, src + i, 8);
        x ^= m64;
        memcpy(dst + i, &x, 8);
    }
    for (; i < len; i++) dst[i] = src[i] ^ mask[i & 3];
}

static void send_control(struct conn *c, int opcode, const unsigned char *payload, size_t len) {
    unsigned char f[2 + 125];
    size_t h = write_header(f, opcode, len);
    memcpy(f + h, payload, len);
    enqueue_copy(c, f, h + len);
}

static void send_close(struct conn *c, uint16_t code) {
    unsigned char p[2] = {(unsigned char)(code >> 8), (unsigned char)code};
    send_control(c, 0x8, p, 2);
    if (c->state != DEAD) c->state = CLOSING;
}

// One complete message from `c`: encoded once into the pod's arena and
// referenced from every recipient's queue. `mask` NULL: already unmasked.
static void route(struct conn *c, int opcode, const unsigned char *payload, size_t len, const unsigned char *mask) {
    struct pod *p = c->pod;
    struct conn **to;
    uint32_t n;
    struct buf **arena;
    if (c->role == RUNNER) {
        to = p->browsers;
        n = p->nbrowsers;
        arena = &p->out_arena;
    } else {
        to = &p->runner;
        n = p->runner ? 1 : 0;
        arena = &p->in_arena;
    }
    if (n == 0) return;
    size_t frame = header_size(len) + len;
    uint32_t off;
    struct buf *b = arena_alloc(arena, frame, &off);
    unsigned char *d = b->data + off;
    size_t h = write_header(d, opcode, len);
    if (mask) unmask_copy(d + h, payload, len, mask);
    else memcpy(d + h, payload, len);
    // A queue over its bound closes its browser, which reorders the array
    // (the last one moves into its place): walk from the end.
    for (uint32_t i = n; i-- > 0;) enqueue(to[i], b, off, (uint32_t)frame);
    buf_release(b);
}

// Parses the complete frames in `b[0..<n]`; returns the bytes consumed.
static size_t on_frames(struct conn *c, unsigned char *b, size_t n) {
    size_t pos = 0;
    while (c->state == OPEN && n - pos >= 2) {
        unsigned char b0 = b[pos], b1 = b[pos + 1];
        int fin = b0 & 0x80, op = b0 & 0x0f, masked = b1 & 0x80;
        size_t len = b1 & 0x7f, hl = 2;
        if (len == 126) hl += 2;
        else if (len == 127) hl += 8;
        if (masked) hl += 4;
        if (n - pos < hl) break;
        if (len == 126) {
            len = ((size_t)b[pos + 2] << 8) | b[pos + 3];
        } else if (len == 127) {
            uint64_t l = 0;
            for (int i = 0; i < 8; i++) l = (l << 8) | b[pos + 2 + i];
            if (l > MAX_MESSAGE) { send_close(c, 1009); break; }
            len = (size_t)l;
        }
        if (!masked) { send_close(c, 1002); break; }        // clients must mask
        if (len > MAX_MESSAGE || c->msg_len + len > MAX_MESSAGE) { send_close(c, 1009); break; }
        if (n - pos - hl < len) break;                       // partial frame: wait
        const unsigned char *mask = b + pos + hl - 4;
        unsigned char *payload = b + pos + hl;
        pos += hl + len;
        if (op >= 0x8) {                                     // control
            if (!fin || len > 125) { send_close(c, 1002); break; }
            unsigned char tmp[125];
            unmask_copy(tmp, payload, len, mask);
            if (op == 0x9) {
                send_control(c, 0xA, tmp, len);
            } else if (op == 0x8) {
                uint16_t code = len >= 2 ? (uint16_t)(tmp[0] << 8 | tmp[1]) : 1000;
                send_close(c, code);
            }                                                // Pong: nothing
        } else if (op <= 0x2) {                              // text, binary, continuation
            if ((op == 0x0) != (c->msg_op != 0)) { send_close(c, 1002); break; }
            if (op != 0x0 && fin) {                          // the usual case: one frame
                route(c, op, payload, len, mask);
                continue;
            }
            if (op != 0x0) c->msg_op = op;                   // first fragment
            if (c->msg_len + len > c->msg_cap) {
                c->msg_cap = (c->msg_len + len) * 2;
                c->msg = realloc(c->msg, c->msg_cap);
                if (!c->msg) { perror("realloc"); exit(1); }
            }
            unmask_copy(c->msg + c->msg_len, payload, len, mask);
            c->msg_len += len;
            if (fin) {
                route(c, c->msg_op, c->msg, c->msg_len, NULL);
                c->msg_op = 0;
                c->msg_len = 0;
            }
        } else {
            send_close(c, 1002);
            break;
        }
    }
    return pos;
}

// ---------------------------------------------------------------------------
// The upgrade

static void respond_error(struct conn *c, int status, const char *reason, const char *body) {
    char r[512];
    int n = snprintf(r, sizeof r, "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n"
                     "Connection: close\r\n\r\n%s", status, reason, strlen(body), body);
    enqueue_copy(c, r, (size_t)n);
    if (c->state != DEAD) c->state = CLOSING;
}

static int b64url_value(unsigned char ch) {
    if (ch >= 'A' && ch <= 'Z') return ch - 'A';
    if (ch >= 'a' && ch <= 'z') return ch - 'a' + 26;
    if (ch >= '0' && ch <= '9') return ch - '0' + 52;
    if (ch == '-' || ch == '+') return 62;
    if (ch == '_' || ch == '/') return 63;
    return -1;
}

// The `pod_key` claim of a JWT, the signature NOT verified (a benchmark
// reference: loadgen mints valid tokens). 0 on success.
static int pod_key_of(const char *token, size_t tlen, char out[MAX_POD_KEY + 1]) {
    const char *dot1 = memchr(token, '.', tlen);
    if (!dot1) return -1;
    const char *p = dot1 + 1, *end = token + tlen;
    const char *dot2 = memchr(p, '.', (size_t)(end - p));
    if (dot2) end = dot2;
    unsigned char json[4096];
    size_t jn = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (; p < end; p++) {
        int v = b64url_value((unsigned char)*p);
        if (v < 0) break;                                    // '=' padding
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (jn == sizeof json - 1) return -1;
            json[jn++] = (unsigned char)(acc >> bits);
        }
    }
    json[jn] = 0;
    const char *k = strstr((const char *)json, "\"pod_key\"");
    if (!k) return -1;
    k += 9;
    while (*k == ' ' || *k == '\t' || *k == '\n' || *k == '\r') k++;
    if (*k++ != ':') return -1;
    while (*k == ' ' || *k == '\t' || *k == '\n' || *k == '\r') k++;
    if (*k++ != '"') return -1;
    size_t o = 0;
    for (; *k && *k != '"'; k++) {
        if (*k == '\\' && k[1]) k++;                         // \" \\ \/ (others kept raw)
        if (o == MAX_POD_KEY) return -1;
        out[o++] = *k;
    }
    if (*k != '"' || o == 0) return -1;
    out[o] = 0;
    return 0;
}

// The value of the header `name` (lowercase, with the colon) in `head`.
static int header_value(const char *head, const char *name, const char **v, size_t *vlen) {
    size_t nl = strlen(name);
    for (const char *l = strstr(head, "\r\n"); l; l = strstr(l, "\r\n")) {
        l += 2;
        if (strncasecmp(l, name, nl) == 0) {
            const char *s = l + nl, *e = strstr(s, "\r\n");
            while (*s == ' ' || *s == '\t') s++;
            while (e > s && (e[-1] == ' ' || e[-1] == '\t')) e--;
            *v = s;
            *vlen = (size_t)(e - s);
            return 0;
        }
    }
    return -1;
}

// `b[0..<n]` holds the start of the request; returns the bytes consumed
// (0: the head is not complete yet).
static size_t on_handshake(struct conn *c, unsigned char *b, size_t n) {
    unsigned char *end = memmem(b, n, "\r\n\r\n", 4);
    if (!end) {
        if (n >= MAX_HEAD) conn_kill(c);
        return 0;
    }
    size_t used = (size_t)(end - b) + 4;
    char head[MAX_HEAD + 1];
    size_t hl = (size_t)(end - b) + 2;                       // keep the last line's CRLF
    if (hl > MAX_HEAD) { conn_kill(c); return 0; }
    memcpy(head, b, hl);
    head[hl] = 0;
    if (strncmp(head, "GET ", 4) != 0) { respond_error(c, 400, "Bad Request", "GET only\n"); return used; }
    const char *target = head + 4, *sp = strchr(target, ' ');
    if (!sp) { respond_error(c, 400, "Bad Request", "bad request line\n"); return used; }
    const char *q = memchr(target, '?', (size_t)(sp - target));
    const char *path = target;
    size_t plen = (size_t)((q ? q : sp) - target);
    if (plen > 6 && strncmp(path, "/relay/", 7) == 0) { path += 6; plen -= 6; }
    enum role role;
    if (plen == 13 && strncmp(path, "/runner/relay", 13) == 0) role = RUNNER;
    else if (plen == 14 && strncmp(path, "/browser/relay", 14) == 0) role = BROWSER;
    else { respond_error(c, 404, "Not Found", "not found\n"); return used; }
    // token=… in the query
    const char *tok = NULL;
    size_t toklen = 0;
    for (const char *s = q ? q + 1 : sp; s < sp;) {
        const char *amp = memchr(s, '&', (size_t)(sp - s));
        const char *e = amp ? amp : sp;
        if (e - s > 6 && strncmp(s, "token=", 6) == 0) { tok = s + 6; toklen = (size_t)(e - tok); }
        s = e + 1;
    }
    char key[MAX_POD_KEY + 1];
    if (!tok || pod_key_of(tok, toklen, key) != 0) {
        respond_error(c, 401, "Unauthorized", "missing or unreadable token\n");
        return used;
    }
    const char *wskey;
    size_t wslen;
    if (header_value(head, "sec-websocket-key:", &wskey, &wslen) != 0 || wslen == 0 || wslen > 64) {
        respond_error(c, 400, "Bad Request", "missing Sec-WebSocket-Key\n");
        return used;
    }
    unsigned char cat[64 + 36], digest[SHA_DIGEST_LENGTH];
    memcpy(cat, wskey, wslen);
    memcpy(cat + wslen, "258EAFA5-E914-47DA-95CA-C5AB0DC85B11", 36);
    SHA1(cat, wslen + 36, digest);
    unsigned char accept[32];
    EVP_EncodeBlock(accept, digest, SHA_DIGEST_LENGTH);
    char r[256];
    int rn = snprintf(r, sizeof r, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                      "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n", accept);
    c->state = OPEN;
    enqueue_copy(c, r, (size_t)rn);
    struct pod *p = pod_get(key);
    c->pod = p;
    c->role = role;
    if (role == RUNNER) {
        struct conn *old = p->runner;
        p->runner = c;
        if (old) {                                           // replaced
            old->pod = NULL;
            send_close(old, 1000);
        }
    } else {
        if (p->nbrowsers == p->cap) {
            p->cap = p->cap ? p->cap * 2 : 16;
            p->browsers = realloc(p->browsers, p->cap * sizeof *p->browsers);
            if (!p->browsers) { perror("realloc"); exit(1); }
        }
        c->index = p->nbrowsers;
        p->browsers[p->nbrowsers++] = c;
    }
    return used;
}

// ---------------------------------------------------------------------------
// The loop

static void on_readable(struct conn *c) {
    unsigned char *base;
    ssize_t r;
    if (c->in_len == 0) {
        base = scratch;
        r = read(c->fd, scratch, READ_MAX);
    } else {
        if (c->in_cap - c->in_len < READ_MAX) {
            c->in_cap = c->in_len + READ_MAX;
            c->in = realloc(c->in, c->in_cap);
            if (!c->in) { perror("realloc"); exit(1); }
        }
        base = c->in;
        r = read(c->fd, c->in + c->in_len, READ_MAX);
    }
    if (r == 0) { conn_kill(c); return; }
    if (r < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) conn_kill(c);
        return;
    }
    if (c->state == CLOSING) return;                         // discard after Close
    size_t have = (base == scratch ? 0 : c->in_len) + (size_t)r, used = 0;
    if (c->state == HANDSHAKE) used = on_handshake(c, base, have);
    if (c->state == OPEN) used += on_frames(c, base + used, have - used);
    if (c->state == DEAD) return;
    size_t left = have - used;
    if (left && base == scratch) {
        if (c->in_cap < left + READ_MAX) {
            c->in_cap = left + READ_MAX;
            c->in = realloc(c->in, c->in_cap);
            if (!c->in) { perror("realloc"); exit(1); }
        }
        memcpy(c->in, scratch + used, left);
    } else if (left && used) {
        memmove(c->in, c->in + used, left);
    }
    c->in_len = left;
}

static void on_accept(int lfd) {
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR) continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK) perror("accept4");
            return;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        struct conn *c = calloc(1, sizeof *c);
        if (!c) { perror("calloc"); exit(1); }
        c->fd = fd;
        c->state = HANDSHAKE;
        c->next = all_conns;
        if (all_conns) all_conns->prev = c;
        all_conns = c;
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
        epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
    }
}

static void on_signal(int signo) {
    (void)signo;
    stopping = 1;
}

int main(int argc, char **argv) {
    if (argc != 2 || atoi(argv[1]) <= 0 || atoi(argv[1]) > 65535) {
        fprintf(stderr, "usage: %s PORT   (WebSocket fan-out reference on 127.0.0.1:PORT)\n", argv[0]);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa = {.sa_handler = on_signal};          // no SA_RESTART: epoll_wait returns EINTR
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[1])),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (bind(lfd, (struct sockaddr *)&a, sizeof a) || listen(lfd, 4096)) {
        perror("listen");
        return 1;
    }
    ep = epoll_create1(EPOLL_CLOEXEC);
    static int listener_tag;
    struct epoll_event lev = {.events = EPOLLIN, .data.ptr = &listener_tag};
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &lev);

    struct epoll_event evs[1024];
    while (!stopping) {
        int n = epoll_wait(ep, evs, 1024, -1);
        if (n < 0) {
            if (errno == EINTR) continue;
            perror("epoll_wait");
            return 1;
        }
        for (int i = 0; i < n; i++) {
            if (evs[i].data.ptr == &listener_tag) { on_accept(lfd); continue; }
            struct conn *c = evs[i].data.ptr;
            if (c->state == DEAD) continue;
            if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) on_readable(c);
            if (c->state != DEAD && (evs[i].events & EPOLLOUT)) mark_dirty(c);
        }
        // The cork: one writev per connection with something queued.
        for (size_t i = 0; i < ndirty; i++) {
            struct conn *c = dirty[i];
            c->dirty = 0;
            if (c->state != DEAD) flush(c);
        }
        ndirty = 0;
        while (dead) {
            struct conn *d = dead;
            dead = d->next_dead;
            free(d);
        }
    }
    while (all_conns) conn_kill(all_conns);
    while (dead) {
        struct conn *d = dead;
        dead = d->next_dead;
        free(d);
    }
    free(dirty);
    close(lfd);
    close(ep);
    return 0;
}
