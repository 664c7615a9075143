/* crypto.h — the hashes, HMACs and encodings the project needs (OpenSSL underneath).
 *
 * Must not: keep a key past the call, or do I/O. */
#ifndef KIE_CRYPTO_H
#define KIE_CRYPTO_H

#include <stddef.h>

/* Writes the 64-char lowercase hex SHA-256 of data plus NUL into out[65]. */
void crypto_sha256_hex(const void *data, size_t len, char out[65]);

/* SHA-256 over data given in pieces: begin, update as often as needed, end (which frees
 * the context and writes the 64-char hex digest plus NUL). */
struct crypto_sha256 {
	void *ctx;
};
int crypto_sha256_begin(struct crypto_sha256 *s);
void crypto_sha256_update(struct crypto_sha256 *s, const void *data, size_t len);
void crypto_sha256_end(struct crypto_sha256 *s, char out[65]);

/* Writes the 40-char lowercase hex SHA-1 (Redis Lua's sha1hex equivalent) into out[41]. */
void crypto_sha1_hex(const void *data, size_t len, char out[41]);

/* Writes base64(HMAC-SHA256(key, msg)) plus NUL into out; out_size >= 45. Returns 0 or -1. */
int crypto_hmac_sha256_b64(const void *key, size_t key_len, const void *msg,
			   size_t msg_len, char *out, size_t out_size);

/* Standard base64 with padding. Returns the length written (excluding NUL) or -1
 * when out_size is too small. */
int crypto_base64(const void *data, size_t len, char *out, size_t out_size);

/* Fills out with 2*nbytes random hex chars plus NUL (RAND_bytes). Returns 0 or -1. */
int crypto_random_hex(size_t nbytes, char *out, size_t out_size);

/* Compares two strings in time independent of where they differ. 1 if equal. */
int crypto_equal_consttime(const char *a, const char *b);

#endif
