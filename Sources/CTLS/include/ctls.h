#ifndef RELAY_CTLS_H
#define RELAY_CTLS_H
// What Swift cannot call directly in OpenSSL 3 (macros), and the write side
// of a TLS connection: a BIO that never blocks, so that SSL_write always
// consumes what it is given and the retry-with-the-same-buffer rule of a
// blocking BIO never applies.
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>
#include <openssl/ssl.h>

/// Records waiting for the socket, per connection. Output is appended to a
/// per-thread scratch buffer while nothing waits, so the common case (the
/// socket takes everything) costs no allocation; what the socket refuses is
/// kept in `pending` (malloc'd, freed once sent).
typedef struct ctls_out {
    int fd;
    unsigned char *pending;
    size_t pending_len;   // bytes in `pending` not yet sent, from `pending_off`
    size_t pending_off;
    size_t pending_cap;
    int failed;           // an allocation failed: the connection must close
} ctls_out;

/// A BIO whose writes append to `out` (which the caller owns and frees
/// after SSL_free). Returns NULL when out of memory.
BIO *ctls_out_bio_new(ctls_out *out);

/// Sends what is waiting: 0 when everything left, 1 when the socket is full
/// (the rest stays in `pending`), -errno on a socket error, -ENOMEM.
int ctls_out_flush(ctls_out *out);

/// Bytes waiting for the socket (scratch included).
size_t ctls_out_waiting(const ctls_out *out);

void ctls_out_free(ctls_out *out);

/// Copies iovecs into the per-thread staging buffer in pieces of at most
/// `record` bytes and SSL_writes each piece: one TLS record per piece
/// instead of one per slice. Stops after `budget` bytes. Returns the
/// plaintext bytes consumed, or -1 when SSL_write failed (SSL_get_error
/// tells why; `*ssl_ret` holds its return value).
/// `skip`: bytes at the start of the iovecs already taken (a later pass
/// over the same slices).
long ctls_write_gathered(SSL *ssl, const struct iovec *iov, int count, size_t skip, size_t record, size_t budget, int *ssl_ret);

// Macros of OpenSSL 3, as functions.
int ctls_ctx_set_min_proto(SSL_CTX *ctx, int version);
int ctls_ctx_set_max_proto(SSL_CTX *ctx, int version);
void ctls_ctx_set_read_ahead(SSL_CTX *ctx, int on);
long ctls_ctx_set_mode(SSL_CTX *ctx, long mode);
int ctls_set_host_name(SSL *ssl, const char *name);
int ctls_ctx_set_session_cache_mode(SSL_CTX *ctx, int mode);

/// The relay's policy on a context: no renegotiation, no compression, the
/// server's cipher order, a peer's EOF without close_notify read as EOF,
/// read-ahead (one read(2) per buffer, not two per record), buffers
/// released while idle; TLS 1.2 suites ECDHE with AEAD only; TLS 1.3
/// suites with AES-128-GCM first.
int ctls_ctx_apply_policy(SSL_CTX *ctx, int server);

/// ALPN on a server: picks the first protocol of `wire` (the server's list,
/// in preference order, in ALPN wire format) that the client offered.
/// `wire` must outlive the context.
void ctls_ctx_set_alpn_server(SSL_CTX *ctx, const unsigned char *wire, unsigned int len);

/// A password callback that refuses: an encrypted key file fails to load
/// instead of prompting on the terminal.
void ctls_ctx_no_password_prompt(SSL_CTX *ctx);

/// The newest OpenSSL error's reason as text ("http request",
/// "wrong version number"...), or "" when there is none. Clears the queue.
const char *ctls_last_error_reason(void);
/// The newest OpenSSL error with its library and reason, for a message.
void ctls_last_error_string(char *buf, size_t len);

/// Makes reads from `bio` fail (errno EMSGSIZE) once `limit` bytes have
/// been read through it; 0 lifts the limit. Checked before each read, so at
/// most one read's worth (a record buffer) passes the limit.
void ctls_bio_limit_reads(BIO *bio, size_t limit);

/// The peer certificate's subject in one-line form, or 0 when none.
int ctls_peer_subject(SSL *ssl, char *buf, int len);

/// SSL_CTX_use_certificate_chain_file + key + check, in one call; 0 on
/// success, else 1 (certificate), 2 (key), 3 (key does not match).
int ctls_ctx_load_chain_and_key(SSL_CTX *ctx, const char *chain, const char *key);

/// Certificate `not after` of the chain's leaf, seconds since the epoch (0 if unknown).
long long ctls_ctx_leaf_not_after(SSL_CTX *ctx);

/// Verification of the peer's name (client side): a DNS name or an IP
/// address literal. 1 on success.
int ctls_set_verify_name(SSL *ssl, const char *name, int is_ip);

#endif
