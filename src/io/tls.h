#ifndef TERN_IO_TLS_H
#define TERN_IO_TLS_H

#include <stdbool.h>

#include <openssl/ssl.h>

struct config;

/*
 * The server side of TLS, shared by every protocol: the default
 * certificate (tls_cert/tls_key) and more chosen by the name the client
 * asks for (SNI, "tls_sni = HOSTNAME CERT KEY"); TLS 1.2 at least,
 * OpenSSL's modern cipher defaults. Connections take ctx through
 * conn_start_tls.
 */
struct tls_server {
	SSL_CTX *ctx;           /* the default; switches to an SNI one per client */
	struct tls_sni_entry *sni;
	size_t nsni;
};

/* Loads every certificate of the config; NULL ctx when none is set. */
struct tls_server *tls_server_new(const struct config *cfg, char **error_r);
void tls_server_free(struct tls_server **tls);

/* One context from a certificate chain and key (exposed for tests). */
SSL_CTX *tls_server_ctx_new(const char *cert_path, const char *key_path, char **error_r);

/*
 * The client side (relay): TLS 1.2 at least. verify false: no certificate
 * check (opportunistic STARTTLS). verify true: the chain must lead to
 * ca_file, or to the system store when ca_file is NULL, and
 * conn_start_tls_client checks the host name. Free with SSL_CTX_free.
 */
SSL_CTX *tls_client_ctx_new(bool verify, const char *ca_file, char **error_r);

#endif
