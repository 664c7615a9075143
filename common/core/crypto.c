/* crypto.c — thin wrappers over OpenSSL's SHA-256, SHA-1, HMAC, base64 and RNG. */
#include "core/crypto.h"

#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

static void to_hex(const unsigned char *in, size_t n, char *out)
{
	static const char hex[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = hex[in[i] >> 4];
		out[2 * i + 1] = hex[in[i] & 15];
	}
	out[2 * n] = '\0';
}

void crypto_sha256_hex(const void *data, size_t len, char out[65])
{
	unsigned char md[SHA256_DIGEST_LENGTH];
	SHA256(data, len, md);
	to_hex(md, sizeof(md), out);
}

int crypto_sha256_begin(struct crypto_sha256 *s)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	s->ctx = ctx;
	if (!ctx || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
		EVP_MD_CTX_free(ctx);
		s->ctx = NULL;
		return -1;
	}
	return 0;
}

void crypto_sha256_update(struct crypto_sha256 *s, const void *data, size_t len)
{
	if (s->ctx)
		EVP_DigestUpdate(s->ctx, data, len);
}

void crypto_sha256_end(struct crypto_sha256 *s, char out[65])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0;
	if (!s->ctx || EVP_DigestFinal_ex(s->ctx, md, &n) != 1 || n != 32) {
		out[0] = '\0';
	} else {
		to_hex(md, 32, out);
	}
	EVP_MD_CTX_free(s->ctx);
	s->ctx = NULL;
}

void crypto_sha1_hex(const void *data, size_t len, char out[41])
{
	unsigned char md[SHA_DIGEST_LENGTH];
	SHA1(data, len, md);
	to_hex(md, sizeof(md), out);
}

int crypto_base64(const void *data, size_t len, char *out, size_t out_size)
{
	size_t need = 4 * ((len + 2) / 3) + 1;
	if (out_size < need)
		return -1;
	return EVP_EncodeBlock((unsigned char *)out, data, (int)len);
}

int crypto_hmac_sha256_b64(const void *key, size_t key_len, const void *msg,
			   size_t msg_len, char *out, size_t out_size)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int md_len = 0;

	if (!HMAC(EVP_sha256(), key, (int)key_len, msg, msg_len, md, &md_len))
		return -1;
	return crypto_base64(md, md_len, out, out_size) < 0 ? -1 : 0;
}

int crypto_random_hex(size_t nbytes, char *out, size_t out_size)
{
	unsigned char buf[64];
	if (nbytes > sizeof(buf) || out_size < 2 * nbytes + 1)
		return -1;
	if (RAND_bytes(buf, (int)nbytes) != 1)
		return -1;
	to_hex(buf, nbytes, out);
	return 0;
}

int crypto_equal_consttime(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	if (la != lb)
		return 0;
	return CRYPTO_memcmp(a, b, la) == 0;
}
