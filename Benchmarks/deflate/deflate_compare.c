/*
 * zlib against libdeflate for the relay's permessage-deflate: every message
 * of a terminal trace compressed on its own (no context takeover, as the
 * relay does: one compressed copy serves every subscriber), then inflated.
 *
 *   cc -O2 -o deflate_compare Benchmarks/deflate/deflate_compare.c -lz -ldeflate
 *   deflate_compare [--runs N] [--min-size 64] [--seconds S] [--json FILE] TRACE
 *
 * TRACE is Benchmarks/traces/terminal.trace (make_trace.py): each chunk is a
 * PTY read, and one message is [0x02 Output][chunk], as the runner sends it.
 * Messages shorter than --min-size stay uncompressed (the relay's
 * --compression-min-size): they count in the whole-trace ratio as they are.
 *
 * Compressors (payload as RFC 7692 §7.2.1 puts it on the wire):
 * - zlib: deflateInit2(level, Z_DEFLATED, -15 (raw), memLevel 8,
 *   Z_DEFAULT_STRATEGY) once; per message deflateReset, deflate(Z_SYNC_FLUSH),
 *   the trailing 00 00 FF FF removed; levels 1 and 6. Level 6 is the relay's
 *   PerMessageDeflateCodec (since 00a7047).
 * - libdeflate: libdeflate_deflate_compress (one shot, ends with a final
 *   block), then one 0x00 octet (the empty stored block after it, less its
 *   last four octets), as PerMessageDeflateCodec did before; levels 1, 6, 9.
 * - zlib 6 with context takeover: one stream for every message (a sync
 *   flush each, no reset), for the ratio a per-connection compressor that
 *   keeps its window would get.
 * Inflaters: zlib inflateReset + inflate of payload + 00 00 FF FF
 * (Z_SYNC_FLUSH), what browsers do; libdeflate_deflate_decompress_ex of
 * payload + 00 00 FF FF 03 00, what the relay does with client messages.
 * Every inflated message is compared with the original, across libraries
 * too (zlib inflates libdeflate's output and the reverse).
 *
 * Time: each measurement loops over every message (passes over the trace
 * until about --seconds), --runs times; the median run is reported. One
 * thread, CLOCK_MONOTONIC. State bytes: what the library allocates for one
 * compressor or decompressor (counted through its allocator hooks): the
 * memory a per-connection (context takeover) design would hold per
 * connection, and what the relay holds once per loop.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <libdeflate.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zlib.h>

static const char MAGIC[] = "RELAYTRACE1\n";

typedef struct {
    size_t count;
    unsigned char **msg;
    size_t *len;
    size_t total;           /* bytes of every message */
    size_t big_count;       /* messages at or above min-size */
    size_t big_total;
} trace_t;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static uint32_t be32(const unsigned char *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void load(const char *path, trace_t *t, size_t min_size) {
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
    size_t off = m;
    off += 4 + be32(d + off);
    size_t cap = 1024;
    t->msg = malloc(cap * sizeof *t->msg);
    t->len = malloc(cap * sizeof *t->len);
    while (off + 4 <= (size_t)n) {
        size_t k = be32(d + off);
        off += 4;
        if (off + k > (size_t)n) { fprintf(stderr, "truncated trace\n"); exit(1); }
        if (t->count == cap) {
            cap *= 2;
            t->msg = realloc(t->msg, cap * sizeof *t->msg);
            t->len = realloc(t->len, cap * sizeof *t->len);
        }
        unsigned char *msg = malloc(k + 1);
        msg[0] = 0x02;                      /* Output */
        memcpy(msg + 1, d + off, k);
        t->msg[t->count] = msg;
        t->len[t->count] = k + 1;
        t->total += k + 1;
        if (k + 1 >= min_size) { t->big_count++; t->big_total += k + 1; }
        t->count++;
        off += k;
    }
    free(d);
}

/* Allocation counting (state bytes). */
static size_t counted;
static void *count_malloc(size_t n) {
    size_t *p = malloc(n + 16);
    if (!p) return NULL;
    p[0] = n;
    counted += n;
    return (char *)p + 16;
}
static void count_free(void *q) {
    if (q) free((char *)q - 16);
}
static voidpf z_alloc(voidpf opaque, uInt items, uInt size) { (void)opaque; return count_malloc((size_t)items * size); }
static void z_free(voidpf opaque, voidpf p) { (void)opaque; count_free(p); }

enum lib { ZLIB, LIBDEFLATE };

typedef struct {
    enum lib lib;
    int level;
    int takeover;           /* zlib only: one stream for every message (context takeover) */
    z_stream zs;
    struct libdeflate_compressor *c;
    size_t state_bytes;
} comp_t;

static void comp_init(comp_t *c, enum lib lib, int level, int takeover) {
    memset(c, 0, sizeof *c);
    c->lib = lib;
    c->level = level;
    c->takeover = takeover;
    counted = 0;
    if (lib == ZLIB) {
        c->zs.zalloc = z_alloc;
        c->zs.zfree = z_free;
        if (deflateInit2(&c->zs, level, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) != Z_OK) { fprintf(stderr, "deflateInit2\n"); exit(1); }
    } else {
        c->c = libdeflate_alloc_compressor(level);
        if (!c->c) { fprintf(stderr, "libdeflate_alloc_compressor\n"); exit(1); }
    }
    c->state_bytes = counted;
}

static void comp_end(comp_t *c) {
    if (c->lib == ZLIB) deflateEnd(&c->zs);
    else libdeflate_free_compressor(c->c);
}

/* Compresses one message into out (cap bytes); returns the RFC 7692 payload length. */
static size_t compress_one(comp_t *c, const unsigned char *in, size_t n, unsigned char *out, size_t cap) {
    if (c->lib == ZLIB) {
        if (!c->takeover) deflateReset(&c->zs);
        c->zs.next_in = (Bytef *)in;
        c->zs.avail_in = (uInt)n;
        c->zs.next_out = out;
        c->zs.avail_out = (uInt)cap;
        int rc = deflate(&c->zs, Z_SYNC_FLUSH);
        if (rc != Z_OK || c->zs.avail_in != 0 || c->zs.avail_out == 0) { fprintf(stderr, "deflate %d\n", rc); exit(1); }
        size_t k = cap - c->zs.avail_out;
        if (k < 4 || memcmp(out + k - 4, "\x00\x00\xff\xff", 4) != 0) { fprintf(stderr, "no sync flush tail\n"); exit(1); }
        return k - 4;
    }
    size_t k = libdeflate_deflate_compress(c->c, in, n, out, cap - 1);
    if (k == 0) { fprintf(stderr, "libdeflate: no room\n"); exit(1); }
    out[k] = 0x00;
    return k + 1;
}

typedef struct {
    z_stream zs;
    struct libdeflate_decompressor *d;
    size_t zlib_state, libdeflate_state;
} decomp_t;

static void decomp_init(decomp_t *d) {
    memset(d, 0, sizeof *d);
    counted = 0;
    d->zs.zalloc = z_alloc;
    d->zs.zfree = z_free;
    if (inflateInit2(&d->zs, -15) != Z_OK) { fprintf(stderr, "inflateInit2\n"); exit(1); }
    /* zlib allocates its 32 KiB window at the first inflate: do one. */
    unsigned char probe_in[] = {0x03, 0x00}, probe_out[4];
    d->zs.next_in = probe_in; d->zs.avail_in = 2; d->zs.next_out = probe_out; d->zs.avail_out = 4;
    inflate(&d->zs, Z_SYNC_FLUSH);
    d->zlib_state = counted;
    counted = 0;
    d->d = libdeflate_alloc_decompressor();
    d->libdeflate_state = counted;
}

/* Inflates payload (with room for 6 more bytes after it) into out; returns the length or -1.
   takeover: zlib's stream goes on from the previous message (no reset). */
static long inflate_one(decomp_t *d, enum lib lib, int takeover, unsigned char *payload, size_t n, unsigned char *out, size_t cap) {
    if (lib == ZLIB) {
        memcpy(payload + n, "\x00\x00\xff\xff", 4);
        if (!takeover) inflateReset(&d->zs);
        d->zs.next_in = payload;
        d->zs.avail_in = (uInt)(n + 4);
        d->zs.next_out = out;
        d->zs.avail_out = (uInt)cap;
        int rc = inflate(&d->zs, Z_SYNC_FLUSH);
        if (rc != Z_OK && rc != Z_STREAM_END) return -1;
        return (long)(cap - d->zs.avail_out);
    }
    memcpy(payload + n, "\x00\x00\xff\xff\x03\x00", 6);
    size_t got = 0;
    enum libdeflate_result r = libdeflate_deflate_decompress_ex(d->d, payload, n + 6, out, cap, NULL, &got);
    return r == LIBDEFLATE_SUCCESS ? (long)got : -1;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* Size classes of the messages compressed (bytes, type byte included). */
#define NBUCKETS 3
static const size_t BUCKET_LIMIT[NBUCKETS] = {256, 1024, (size_t)-1};
static const char *BUCKET_NAME[NBUCKETS] = {"<256", "256-1023", ">=1024"};

typedef struct {
    const char *name;
    enum lib lib;
    int level;
    int takeover;
    /* results */
    size_t state_bytes;
    size_t out_big;             /* compressed bytes of the messages compressed */
    double comp_s, inf_s;       /* median seconds per pass over the messages compressed */
    double comp_runs[64], inf_runs[64];
    double bucket_ns[NBUCKETS]; /* median ns per message of each size class (no-takeover configs) */
    size_t bucket_in[NBUCKETS], bucket_out[NBUCKETS];
    int passes_c, passes_i;
    long mismatches;
} config_t;

typedef struct {
    size_t *idx;
    size_t n;
} set_t;

static trace_t T;
static unsigned char **COMP, *SCRATCH, *OUT;
static size_t *CLEN, CAP, MAXLEN;
static int RUNS;
static double SECONDS;

/* Median over RUNS of the seconds one pass over `set` takes (passes sized to about SECONDS). */
static double time_compress(comp_t *cc, set_t set, double *runs_out, int *passes_out) {
    double t0 = now();
    for (size_t j = 0; j < set.n; j++) compress_one(cc, T.msg[set.idx[j]], T.len[set.idx[j]], SCRATCH, CAP);
    double one = now() - t0;
    int passes = one > 0 ? (int)(SECONDS / one) + 1 : 1;
    double v[64];
    for (int r = 0; r < RUNS; r++) {
        t0 = now();
        for (int p = 0; p < passes; p++)
            for (size_t j = 0; j < set.n; j++) compress_one(cc, T.msg[set.idx[j]], T.len[set.idx[j]], SCRATCH, CAP);
        v[r] = (now() - t0) / passes;
        if (runs_out) runs_out[r] = v[r];
    }
    if (passes_out) *passes_out = passes;
    return median(v, RUNS);
}

static double time_inflate(decomp_t *dec, config_t *c, set_t set, double *runs_out, int *passes_out) {
    double t0 = now();
    if (c->takeover) inflateReset(&dec->zs);
    for (size_t j = 0; j < set.n; j++) {
        size_t i = set.idx[j];
        inflate_one(dec, c->lib, c->takeover, COMP[i], CLEN[i], OUT, MAXLEN + 64);
    }
    double one = now() - t0;
    int passes = one > 0 ? (int)(SECONDS / one) + 1 : 1;
    double v[64];
    for (int r = 0; r < RUNS; r++) {
        t0 = now();
        for (int p = 0; p < passes; p++) {
            /* A stream inflates from its start: the same messages again need a new stream. */
            if (c->takeover) inflateReset(&dec->zs);
            for (size_t j = 0; j < set.n; j++) {
                size_t i = set.idx[j];
                inflate_one(dec, c->lib, c->takeover, COMP[i], CLEN[i], OUT, MAXLEN + 64);
            }
        }
        v[r] = (now() - t0) / passes;
        if (runs_out) runs_out[r] = v[r];
    }
    if (passes_out) *passes_out = passes;
    return median(v, RUNS);
}

int main(int argc, char **argv) {
    int runs = 5;
    size_t min_size = 64;
    double seconds = 0.08;
    const char *json = NULL, *path = NULL;
    const char *usage = "usage: %s [--runs N] [--min-size B] [--seconds S] [--json FILE] TRACE\n";
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--runs") && i + 1 < argc) runs = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--min-size") && i + 1 < argc) min_size = (size_t)atol(argv[++i]);
        else if (!strcmp(argv[i], "--seconds") && i + 1 < argc) seconds = atof(argv[++i]);
        else if (!strcmp(argv[i], "--json") && i + 1 < argc) json = argv[++i];
        else if (argv[i][0] != '-') path = argv[i];
        else { fprintf(stderr, usage, argv[0]); return 2; }
    }
    if (!path) { fprintf(stderr, usage, argv[0]); return 2; }
    if (runs < 1) runs = 1;
    if (runs > 64) runs = 64;
    RUNS = runs;
    SECONDS = seconds;
    libdeflate_set_memory_allocator(count_malloc, count_free);
    load(path, &T, min_size);
    for (size_t i = 0; i < T.count; i++) if (T.len[i] > MAXLEN) MAXLEN = T.len[i];
    CAP = MAXLEN + MAXLEN / 8 + 1024;
    COMP = malloc(T.count * sizeof *COMP);
    CLEN = calloc(T.count, sizeof *CLEN);
    for (size_t i = 0; i < T.count; i++) COMP[i] = malloc(CAP + 8);
    SCRATCH = malloc(CAP + 8);
    OUT = malloc(MAXLEN + 64);
    /* The messages compressed, in order, and by size class. */
    set_t all = {malloc(T.count * sizeof(size_t)), 0};
    set_t bucket[NBUCKETS];
    for (int b = 0; b < NBUCKETS; b++) bucket[b] = (set_t){malloc(T.count * sizeof(size_t)), 0};
    for (size_t i = 0; i < T.count; i++) {
        if (T.len[i] < min_size) continue;
        all.idx[all.n++] = i;
        int b = 0;
        while (T.len[i] >= BUCKET_LIMIT[b]) b++;
        bucket[b].idx[bucket[b].n++] = i;
    }

    config_t cfg[] = {
        {.name = "zlib 1", .lib = ZLIB, .level = 1}, {.name = "zlib 6", .lib = ZLIB, .level = 6},
        {.name = "libdeflate 1", .lib = LIBDEFLATE, .level = 1}, {.name = "libdeflate 6", .lib = LIBDEFLATE, .level = 6},
        {.name = "libdeflate 9", .lib = LIBDEFLATE, .level = 9},
        {.name = "zlib 6 takeover", .lib = ZLIB, .level = 6, .takeover = 1},
    };
    int ncfg = sizeof cfg / sizeof cfg[0];
    decomp_t dec;
    decomp_init(&dec);

    for (int k = 0; k < ncfg; k++) {
        config_t *c = &cfg[k];
        comp_t cc;
        comp_init(&cc, c->lib, c->level, c->takeover);
        c->state_bytes = cc.state_bytes;
        /* The compressed form of every message, kept for inflating. */
        c->out_big = 0;
        for (size_t j = 0; j < all.n; j++) {
            size_t i = all.idx[j];
            CLEN[i] = compress_one(&cc, T.msg[i], T.len[i], COMP[i], CAP);
            c->out_big += CLEN[i];
        }
        /* Every message back, compared with the original: by both inflaters
           (each message alone), or by zlib as one stream (takeover). */
        if (c->takeover) inflateReset(&dec.zs);
        for (size_t j = 0; j < all.n; j++) {
            size_t i = all.idx[j];
            for (int lib = 0; lib < (c->takeover ? 1 : 2); lib++) {
                long n = inflate_one(&dec, (enum lib)lib, c->takeover, COMP[i], CLEN[i], OUT, MAXLEN + 64);
                if (n != (long)T.len[i] || memcmp(OUT, T.msg[i], T.len[i]) != 0) c->mismatches++;
            }
        }
        if (c->takeover) {
            /* Timed passes go on with the same stream (its window holds the previous pass). */
            comp_end(&cc);
            comp_init(&cc, c->lib, c->level, c->takeover);
        }
        c->comp_s = time_compress(&cc, all, c->comp_runs, &c->passes_c);
        if (!c->takeover) {
            for (int b = 0; b < NBUCKETS; b++) {
                c->bucket_in[b] = c->bucket_out[b] = 0;
                for (size_t j = 0; j < bucket[b].n; j++) {
                    c->bucket_in[b] += T.len[bucket[b].idx[j]];
                    c->bucket_out[b] += CLEN[bucket[b].idx[j]];
                }
                c->bucket_ns[b] = bucket[b].n ? time_compress(&cc, bucket[b], NULL, NULL) * 1e9 / (double)bucket[b].n : 0;
            }
        }
        comp_end(&cc);
        c->inf_s = time_inflate(&dec, c, all, c->inf_runs, &c->passes_i);
    }

    size_t small = T.total - T.big_total;
    printf("trace %s: %zu messages, %zu B ([0x02][chunk]); %zu messages of >= %zu B (%zu B) compressed, "
           "%zu smaller ones (%zu B) as they are; median of %d runs\n",
           path, T.count, T.total, T.big_count, min_size, T.big_total, T.count - T.big_count, small, runs);
    printf("%-16s %8s %8s %7s %7s %9s %9s %9s %8s %9s %8s  ns/msg by size:", "compressor", "MB/s in", "ns/msg",
           "ratio", "trace", "state B", "inflater", "inf MB/s", "inf ns", "mismatch", "passes");
    for (int b = 0; b < NBUCKETS; b++) printf(" %s (%zu)", BUCKET_NAME[b], bucket[b].n);
    printf("\n");
    for (int k = 0; k < ncfg; k++) {
        config_t *c = &cfg[k];
        printf("%-16s %8.1f %8.0f %7.3f %7.3f %9zu %9s %9.1f %8.0f %9ld %4d/%-4d ", c->name,
               T.big_total / c->comp_s / 1e6, c->comp_s * 1e9 / (double)T.big_count,
               (double)c->out_big / (double)T.big_total, (double)(c->out_big + small) / (double)T.total, c->state_bytes,
               c->lib == ZLIB ? "zlib" : "libdeflate", T.big_total / c->inf_s / 1e6, c->inf_s * 1e9 / (double)T.big_count,
               c->mismatches, c->passes_c, c->passes_i);
        for (int b = 0; b < NBUCKETS && !c->takeover; b++) printf(" %8.0f", c->bucket_ns[b]);
        printf("\n");
    }
    printf("inflate state: zlib %zu B (its 32 KiB window allocated at the first inflate), libdeflate %zu B\n",
           dec.zlib_state, dec.libdeflate_state);
    if (json) {
        FILE *f = fopen(json, "w");
        if (!f) { fprintf(stderr, "%s: %s\n", json, strerror(errno)); return 1; }
        fprintf(f, "{\"trace\": \"%s\", \"messages\": %zu, \"bytes\": %zu, \"compressed_messages\": %zu, "
                   "\"compressed_bytes_in\": %zu, \"min_size\": %zu, \"runs\": %d, \"seconds\": %g, \"zlib_version\": \"%s\", "
                   "\"libdeflate_version\": \"%s\", \"inflate_state_zlib\": %zu, \"inflate_state_libdeflate\": %zu, "
                   "\"buckets\": [",
                path, T.count, T.total, T.big_count, T.big_total, min_size, runs, seconds, zlibVersion(),
                LIBDEFLATE_VERSION_STRING, dec.zlib_state, dec.libdeflate_state);
        for (int b = 0; b < NBUCKETS; b++) fprintf(f, "%s{\"name\": \"%s\", \"messages\": %zu}", b ? ", " : "", BUCKET_NAME[b], bucket[b].n);
        fprintf(f, "], \"configs\": [");
        for (int k = 0; k < ncfg; k++) {
            config_t *c = &cfg[k];
            fprintf(f, "%s{\"name\": \"%s\", \"lib\": \"%s\", \"level\": %d, \"takeover\": %s, \"state_bytes\": %zu, "
                       "\"bytes_out\": %zu, \"ratio\": %.5f, \"ratio_trace\": %.5f, \"compress_mb_s\": %.2f, "
                       "\"compress_ns_per_message\": %.1f, \"inflate_mb_s\": %.2f, \"inflate_ns_per_message\": %.1f, "
                       "\"mismatches\": %ld, \"passes\": [%d, %d], \"buckets\": [",
                    k ? ", " : "", c->name, c->lib == ZLIB ? "zlib" : "libdeflate", c->level, c->takeover ? "true" : "false",
                    c->state_bytes, c->out_big, (double)c->out_big / (double)T.big_total,
                    (double)(c->out_big + small) / (double)T.total, T.big_total / c->comp_s / 1e6,
                    c->comp_s * 1e9 / (double)T.big_count, T.big_total / c->inf_s / 1e6,
                    c->inf_s * 1e9 / (double)T.big_count, c->mismatches, c->passes_c, c->passes_i);
            for (int b = 0; b < NBUCKETS && !c->takeover; b++)
                fprintf(f, "%s{\"ns_per_message\": %.1f, \"bytes_in\": %zu, \"bytes_out\": %zu}", b ? ", " : "",
                        c->bucket_ns[b], c->bucket_in[b], c->bucket_out[b]);
            fprintf(f, "], \"compress_runs_s\": [");
            for (int r = 0; r < runs; r++) fprintf(f, "%s%.6f", r ? ", " : "", c->comp_runs[r]);
            fprintf(f, "], \"inflate_runs_s\": [");
            for (int r = 0; r < runs; r++) fprintf(f, "%s%.6f", r ? ", " : "", c->inf_runs[r]);
            fprintf(f, "]}");
        }
        fprintf(f, "]}\n");
        fclose(f);
    }
    int bad = 0;
    for (int k = 0; k < ncfg; k++) bad |= cfg[k].mismatches != 0;
    return bad;
}
