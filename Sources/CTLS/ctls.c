#include "ctls.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <openssl/err.h>
#include <openssl/x509.h>

// MARK: Output: a never-blocking BIO in front of the socket

typedef struct scratch_buf {
    unsigned char *p;
    size_t len;
    size_t cap;
} scratch_buf;

// Encrypted records of the operation in progress on this thread (a loop
// runs one TLS operation at a time, and every operation ends with
// ctls_out_flush, which empties it).
static __thread scratch_buf scratch;

static int reserve(unsigned char **p, size_t *cap, size_t need) {
    if (need <= *cap) return 0;
    size_t n = *cap ? *cap : 16384;
    while (n < need) n *= 2;
    unsigned char *q = realloc(*p, n);
    if (!q) return -1;
    *p = q;
    *cap = n;
    return 0;
}

static int out_write(BIO *bio, const char *data, int len) {
    ctls_out *out = BIO_get_data(bio);
    if (len <= 0) return 0;
    if (out->pending_len > 0) {
        // Something waits already: keep the order, append behind it.
        if (out->pending_off > 0) {
            memmove(out->pending, out->pending + out->pending_off, out->pending_len);
            out->pending_off = 0;
        }
        if (reserve(&out->pending, &out->pending_cap, out->pending_len + (size_t)len) != 0) {
            out->failed = 1;
            return -1;
        }
        memcpy(out->pending + out->pending_len, data, (size_t)len);
        out->pending_len += (size_t)len;
        return len;
    }
    if (reserve(&scratch.p, &scratch.cap, scratch.len + (size_t)len) != 0) {
        out->failed = 1;
        return -1;
    }
    memcpy(scratch.p + scratch.len, data, (size_t)len);
    scratch.len += (size_t)len;
    return len;
}

static long out_ctrl(BIO *bio, int cmd, long num, void *ptr) {
    (void)bio; (void)num; (void)ptr;
    // FLUSH must succeed (OpenSSL flushes after handshake flights); the
    // rest (kTLS queries among them) are "not supported".
    return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

static int out_create(BIO *bio) {
    BIO_set_init(bio, 1);
    return 1;
}

static BIO_METHOD *out_method(void) {
    static BIO_METHOD *method;
    static int once;
    // Created on first use; threads race only to the same result, so the
    // loser's copy is freed.
    if (!__atomic_load_n(&once, __ATOMIC_ACQUIRE)) {
        BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "relay-out");
        if (!m) return NULL;
        BIO_meth_set_write(m, out_write);
        BIO_meth_set_ctrl(m, out_ctrl);
        BIO_meth_set_create(m, out_create);
        BIO_METHOD *expected = NULL;
        if (!__atomic_compare_exchange_n(&method, &expected, m, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
            BIO_meth_free(m);
        }
        __atomic_store_n(&once, 1, __ATOMIC_RELEASE);
    }
    return __atomic_load_n(&method, __ATOMIC_ACQUIRE);
}

BIO *ctls_out_bio_new(ctls_out *out) {
    BIO_METHOD *m = out_method();
    if (!m) return NULL;
    BIO *bio = BIO_new(m);
    if (bio) BIO_set_data(bio, out);
    return bio;
}

static ssize_t send_some(int fd, const unsigned char *p, size_t len) {
    ssize_t n;
    do { n = send(fd, p, len, MSG_NOSIGNAL); } while (n < 0 && errno == EINTR);
    return n;
}

int ctls_out_flush(ctls_out *out) {
    if (out->failed) {
        scratch.len = 0;
        return -ENOMEM;
    }
    if (out->pending_len > 0) {
        ssize_t n = send_some(out->fd, out->pending + out->pending_off, out->pending_len);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) return 1;
            return -errno;
        }
        out->pending_off += (size_t)n;
        out->pending_len -= (size_t)n;
        if (out->pending_len > 0) return 1;
        // Sent: give the memory back (an idle connection holds none).
        free(out->pending);
        out->pending = NULL;
        out->pending_cap = 0;
        out->pending_off = 0;
    }
    if (scratch.len == 0) return 0;
    size_t len = scratch.len;
    scratch.len = 0;
    ssize_t n = send_some(out->fd, scratch.p, len);
    if (n < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK) return -errno;
        n = 0;
    }
    size_t rest = len - (size_t)n;
    if (rest == 0) return 0;
    if (reserve(&out->pending, &out->pending_cap, rest) != 0) {
        out->failed = 1;
        return -ENOMEM;
    }
    memcpy(out->pending, scratch.p + n, rest);
    out->pending_len = rest;
    out->pending_off = 0;
    return 1;
}

size_t ctls_out_waiting(const ctls_out *out) {
    return out->pending_len;
}

void ctls_out_free(ctls_out *out) {
    free(out->pending);
    out->pending = NULL;
    out->pending_len = out->pending_cap = out->pending_off = 0;
}

// MARK: Gathered writes

static __thread unsigned char *stage;
static __thread size_t stage_cap;

long ctls_write_gathered(SSL *ssl, const struct iovec *iov, int count, size_t skip, size_t record, size_t budget, int *ssl_ret) {
    if (reserve(&stage, &stage_cap, record) != 0) {
        *ssl_ret = -1;
        return -1;
    }
    size_t consumed = 0;   // plaintext handed to SSL_write
    size_t staged = 0;     // bytes in `stage`
    for (int i = 0; i < count && consumed + staged < budget; i++) {
        const unsigned char *p = iov[i].iov_base;
        size_t len = iov[i].iov_len;
        if (skip >= len) {
            skip -= len;
            continue;
        }
        p += skip;
        len -= skip;
        skip = 0;
        while (len > 0 && consumed + staged < budget) {
            // A whole record's worth in one slice: write it in place.
            if (staged == 0 && len >= record) {
                size_t w = 0;
                int r = SSL_write_ex(ssl, p, record, &w);
                if (r <= 0) { *ssl_ret = r; return consumed ? (long)consumed : -1; }
                consumed += w; p += w; len -= w;
                continue;
            }
            size_t take = record - staged;
            if (take > len) take = len;
            memcpy(stage + staged, p, take);
            staged += take; p += take; len -= take;
            if (staged == record) {
                size_t w = 0;
                int r = SSL_write_ex(ssl, stage, staged, &w);
                if (r <= 0) { *ssl_ret = r; return consumed ? (long)consumed : -1; }
                consumed += staged;
                staged = 0;
            }
        }
    }
    if (staged > 0) {
        size_t w = 0;
        int r = SSL_write_ex(ssl, stage, staged, &w);
        if (r <= 0) { *ssl_ret = r; return consumed ? (long)consumed : -1; }
        consumed += staged;
    }
    *ssl_ret = 1;
    return (long)consumed;
}

// MARK: Macros as functions

int ctls_ctx_set_min_proto(SSL_CTX *ctx, int version) { return (int)SSL_CTX_set_min_proto_version(ctx, version); }
int ctls_ctx_set_max_proto(SSL_CTX *ctx, int version) { return (int)SSL_CTX_set_max_proto_version(ctx, version); }
void ctls_ctx_set_read_ahead(SSL_CTX *ctx, int on) { SSL_CTX_set_read_ahead(ctx, on); }
long ctls_ctx_set_mode(SSL_CTX *ctx, long mode) { return SSL_CTX_set_mode(ctx, mode); }
int ctls_set_host_name(SSL *ssl, const char *name) { return (int)SSL_set_tlsext_host_name(ssl, name); }
int ctls_ctx_set_session_cache_mode(SSL_CTX *ctx, int mode) { return (int)SSL_CTX_set_session_cache_mode(ctx, mode); }

int ctls_ctx_apply_policy(SSL_CTX *ctx, int server) {
    uint64_t options = SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION | SSL_OP_IGNORE_UNEXPECTED_EOF;
    if (server) options |= SSL_OP_CIPHER_SERVER_PREFERENCE;
    SSL_CTX_set_options(ctx, options);
    SSL_CTX_set_read_ahead(ctx, 1);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    // TLS 1.3: AES-128-GCM first. It is as strong as the protocol needs,
    // costs 10 AES rounds per block instead of 14 and SHA-256 instead of
    // SHA-384 in the key schedule, and every subscriber's bytes are
    // encrypted separately (no kernel TLS here), so the suite is the
    // relay's biggest per-byte cost under TLS.
    if (SSL_CTX_set_ciphersuites(ctx, "TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256:TLS_AES_256_GCM_SHA384") != 1) return 0;
    return SSL_CTX_set_cipher_list(ctx, "ECDHE+AESGCM:ECDHE+CHACHA20");
}

int ctls_set_verify_name(SSL *ssl, const char *name, int is_ip) {
    if (is_ip) return X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name);
    return SSL_set1_host(ssl, name);
}

typedef struct alpn_list {
    const unsigned char *wire;
    unsigned int len;
} alpn_list;

static int alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                       const unsigned char *in, unsigned int inlen, void *arg) {
    (void)ssl;
    const alpn_list *ours = arg;
    // Server preference: our list's order decides.
    for (unsigned int i = 0; i < ours->len; i += 1u + ours->wire[i]) {
        const unsigned char *want = ours->wire + i;
        for (unsigned int j = 0; j < inlen; j += 1u + in[j]) {
            if (in[j] == want[0] && j + 1u + in[j] <= inlen && memcmp(in + j + 1, want + 1, want[0]) == 0) {
                *out = in + j + 1;
                *outlen = in[j];
                return SSL_TLSEXT_ERR_OK;
            }
        }
    }
    // No protocol in common: go on without ALPN (RFC 7301 allows the
    // server to refuse; curl and browsers then speak HTTP/1.1 anyway).
    return SSL_TLSEXT_ERR_NOACK;
}

void ctls_ctx_set_alpn_server(SSL_CTX *ctx, const unsigned char *wire, unsigned int len) {
    alpn_list *list = malloc(sizeof *list);
    if (!list) return;
    list->wire = wire;
    list->len = len;
    // Freed never: one small list per context, and contexts are rare
    // (start-up and reloads).
    SSL_CTX_set_alpn_select_cb(ctx, alpn_select, list);
}

static int no_password(char *buf, int size, int rwflag, void *u) {
    (void)buf; (void)size; (void)rwflag; (void)u;
    return -1;
}

void ctls_ctx_no_password_prompt(SSL_CTX *ctx) { SSL_CTX_set_default_passwd_cb(ctx, no_password); }

static __thread char reason_buf[128];

const char *ctls_last_error_reason(void) {
    unsigned long e = ERR_peek_last_error();
    ERR_clear_error();
    if (e == 0) return "";
    const char *r = ERR_reason_error_string(e);
    if (r) return r;
    snprintf(reason_buf, sizeof reason_buf, "error %lu", (unsigned long)ERR_GET_REASON(e));
    return reason_buf;
}

void ctls_last_error_string(char *buf, size_t len) {
    unsigned long e = ERR_peek_last_error();
    ERR_clear_error();
    if (e == 0) { if (len) buf[0] = 0; return; }
    ERR_error_string_n(e, buf, len);
}

static long limit_reads(BIO *b, int oper, const char *argp, size_t len, int argi, long argl, int ret, size_t *processed) {
    (void)argp; (void)len; (void)argi; (void)argl; (void)processed;
    if (oper == BIO_CB_READ) {
        size_t limit = (size_t)(uintptr_t)BIO_get_callback_arg(b);
        if (BIO_number_read(b) >= limit) {
            errno = EMSGSIZE;
            return -1;
        }
    }
    return ret;
}

void ctls_bio_limit_reads(BIO *bio, size_t limit) {
    if (limit == 0) {
        BIO_set_callback_ex(bio, NULL);
        return;
    }
    BIO_set_callback_arg(bio, (char *)(uintptr_t)limit);
    BIO_set_callback_ex(bio, limit_reads);
}

int ctls_peer_subject(SSL *ssl, char *buf, int len) {
    X509 *cert = SSL_get1_peer_certificate(ssl);
    if (!cert) return 0;
    X509_NAME_oneline(X509_get_subject_name(cert), buf, len);
    X509_free(cert);
    return 1;
}

int ctls_ctx_load_chain_and_key(SSL_CTX *ctx, const char *chain, const char *key) {
    if (SSL_CTX_use_certificate_chain_file(ctx, chain) != 1) return 1;
    if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
        // OpenSSL checks the key against the certificate as it loads it.
        return ERR_GET_REASON(ERR_peek_last_error()) == X509_R_KEY_VALUES_MISMATCH ? 3 : 2;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) return 3;
    return 0;
}

long long ctls_ctx_leaf_not_after(SSL_CTX *ctx) {
    X509 *cert = SSL_CTX_get0_certificate(ctx);
    if (!cert) return 0;
    const ASN1_TIME *t = X509_get0_notAfter(cert);
    struct tm tm;
    if (!t || ASN1_TIME_to_tm(t, &tm) != 1) return 0;
    return (long long)timegm(&tm);
}
