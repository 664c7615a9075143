/* redis_tls.c — the OpenSSL client context for Redis and the verified handshake. */
#include "redis/redis_tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <hiredis/hiredis_ssl.h>

#include "core/util.h"

static SSL_CTX *g_ctx; /* set before threads start (redis_tls_init), read-only after */

/* Never asks for a passphrase (OpenSSL would prompt on the terminal): an encrypted key
 * fails to load instead. */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
	return 0;
}

/* The reason of OpenSSL's last error, or "unknown error"; clears the error queue. */
static const char *ossl_reason(char *out, size_t n)
{
	unsigned long e = ERR_peek_last_error();
	const char *r = e ? ERR_reason_error_string(e) : NULL;
	snprintf(out, n, "%s", r ? r : "unknown error");
	ERR_clear_error();
	return out;
}

static int readable(const char *var, const char *path, char *err, size_t errlen)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		snprintf(err, errlen, "%s: cannot read %s: %s", var, path, strerror(errno));
		return -1;
	}
	close(fd);
	return 0;
}

int redis_tls_init(const char *ca_file, const char *cert_file, const char *key_file,
		   char *err, size_t errlen)
{
	SSL_CTX *ctx = NULL;
	char why[256];

	ca_file = ca_file ? ca_file : "";
	cert_file = cert_file ? cert_file : "";
	key_file = key_file ? key_file : "";
	if (!*cert_file != !*key_file) {
		snprintf(err, errlen, "%s is set without %s: a client certificate needs both "
			 "(or set neither)", *cert_file ? "REDIS_TLS_CERT_FILE" : "REDIS_TLS_KEY_FILE",
			 *cert_file ? "REDIS_TLS_KEY_FILE" : "REDIS_TLS_CERT_FILE");
		return -1;
	}
	if ((*ca_file && readable("REDIS_TLS_CA_FILE", ca_file, err, errlen) != 0) ||
	    (*cert_file && readable("REDIS_TLS_CERT_FILE", cert_file, err, errlen) != 0) ||
	    (*key_file && readable("REDIS_TLS_KEY_FILE", key_file, err, errlen) != 0))
		return -1;
	if (OPENSSL_init_ssl(0, NULL) != 1 || !(ctx = SSL_CTX_new(TLS_client_method()))) {
		snprintf(err, errlen, "REDIS_URL: TLS could not be set up (OpenSSL: %s)",
			 ossl_reason(why, sizeof(why)));
		return -1;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	SSL_CTX_set_default_passwd_cb(ctx, no_passphrase);
	if (*ca_file) {
		if (SSL_CTX_load_verify_locations(ctx, ca_file, NULL) != 1) {
			snprintf(err, errlen, "REDIS_TLS_CA_FILE: %s holds no CA certificate OpenSSL "
				 "can load (%s); it must be PEM, one or more \"BEGIN CERTIFICATE\" "
				 "blocks", ca_file, ossl_reason(why, sizeof(why)));
			goto fail;
		}
	} else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
		snprintf(err, errlen, "REDIS_TLS_CA_FILE is unset and the system's CA certificates "
			 "cannot be loaded (%s): install ca-certificates or set REDIS_TLS_CA_FILE",
			 ossl_reason(why, sizeof(why)));
		goto fail;
	}
	if (*cert_file) {
		if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1) {
			snprintf(err, errlen, "REDIS_TLS_CERT_FILE: %s holds no certificate OpenSSL "
				 "can load (%s); it must be PEM", cert_file,
				 ossl_reason(why, sizeof(why)));
			goto fail;
		}
		ERR_clear_error();
		if (SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) != 1) {
			if (ERR_GET_REASON(ERR_peek_last_error()) == X509_R_KEY_VALUES_MISMATCH) {
				ERR_clear_error();
				snprintf(err, errlen, "REDIS_TLS_KEY_FILE: %s is not the key of "
					 "REDIS_TLS_CERT_FILE's certificate (%s)", key_file, cert_file);
			} else {
				snprintf(err, errlen, "REDIS_TLS_KEY_FILE: %s holds no private key "
					 "OpenSSL can load (%s); it must be PEM and without a "
					 "passphrase", key_file, ossl_reason(why, sizeof(why)));
			}
			goto fail;
		}
		if (SSL_CTX_check_private_key(ctx) != 1) {
			ERR_clear_error();
			snprintf(err, errlen, "REDIS_TLS_KEY_FILE: %s is not the key of "
				 "REDIS_TLS_CERT_FILE's certificate (%s)", key_file, cert_file);
			goto fail;
		}
	}
	ERR_clear_error(); /* nothing left for a later error message to pick up */
	if (g_ctx)
		SSL_CTX_free(g_ctx);
	g_ctx = ctx;
	return 0;
fail:
	SSL_CTX_free(ctx);
	return -1;
}

void redis_tls_cleanup(void)
{
	if (g_ctx)
		SSL_CTX_free(g_ctx);
	g_ctx = NULL;
}

int redis_tls_handshake(redisContext *c, const char *name, char *why, size_t whylen)
{
	unsigned char bin[16];
	char ip[64];
	SSL *ssl;
	long v;
	int is_ip;

	if (!g_ctx) {
		snprintf(why, whylen, "TLS is not set up (redis_tls_init)");
		return -1;
	}
	ssl = SSL_new(g_ctx);
	if (!ssl) {
		snprintf(why, whylen, "TLS: out of memory");
		return -1;
	}
	/* an IP literal is checked against the certificate's IP addresses and sent without
	 * SNI (RFC 6066); a v6 zone id ("fe80::1%eth0") is not part of the address */
	util_strlcpy(ip, name, sizeof(ip));
	ip[strcspn(ip, "%")] = '\0';
	is_ip = inet_pton(AF_INET, ip, bin) == 1 || inet_pton(AF_INET6, ip, bin) == 1;
	if (is_ip ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), ip) != 1
		  : SSL_set_tlsext_host_name(ssl, name) != 1 || SSL_set1_host(ssl, name) != 1) {
		snprintf(why, whylen, "TLS: \"%.100s\" cannot be checked against a certificate",
			 name);
		SSL_free(ssl);
		ERR_clear_error();
		return -1;
	}
	SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
	ERR_clear_error();
	if (redisInitiateSSL(c, ssl) != REDIS_OK) {
		v = SSL_get_verify_result(ssl);
		if (v != X509_V_OK)
			snprintf(why, whylen, "TLS: the server's certificate is not trusted for %.100s: "
				 "%s (REDIS_TLS_CA_FILE names the CA that signed it)", name,
				 X509_verify_cert_error_string(v));
		else
			snprintf(why, whylen, "TLS handshake failed: %s", c->errstr);
		SSL_free(ssl); /* hiredis takes it only on success */
		ERR_clear_error();
		return -1;
	}
	return 0;
}
