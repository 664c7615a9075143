/* redis_tls.h — TLS for Redis connections (rediss://, REDIS_SENTINEL_TLS): one
 * process-wide OpenSSL context made at start-up from REDIS_TLS_*, and the handshake on a
 * connected hiredis context, the server's certificate checked against the CA and the
 * host name (hiredis_ssl checks the chain only, so the name is checked here).
 *
 * Must not: weaken verification: the chain and the name are always checked. */
#ifndef KIE_REDIS_TLS_H
#define KIE_REDIS_TLS_H

#include <stddef.h>

#include <hiredis/hiredis.h>

/* Makes the process's TLS context: ca_file (REDIS_TLS_CA_FILE, PEM; "" = the system's CA
 * certificates, OpenSSL's default paths), and a client certificate when cert_file and
 * key_file (REDIS_TLS_CERT_FILE, REDIS_TLS_KEY_FILE, PEM, key without a passphrase) are
 * both set. TLS 1.2 or later; the server's certificate is always verified. Call it before
 * any thread connects; a second call replaces the context (for tests). Returns 0, or -1
 * with err naming the variable, the path and the problem (unreadable, not PEM, key does
 * not match the certificate). */
int redis_tls_init(const char *ca_file, const char *cert_file, const char *key_file,
		   char *err, size_t errlen);

/* Runs the TLS handshake on c (connected, blocking; its timeouts bound the handshake),
 * sending name as SNI (not for an IP literal) and requiring the server's certificate to
 * be valid for it (DNS name or IP address). Afterwards hiredis reads and writes through
 * TLS and redisFree() frees the TLS state. Returns 0, or -1 with why (e.g. "the server's
 * certificate is not trusted: ..."); c is then the caller's to free. */
int redis_tls_handshake(redisContext *c, const char *name, char *why, size_t whylen);

/* Frees the process's context (at exit; connections already made keep theirs). */
void redis_tls_cleanup(void);

#endif
