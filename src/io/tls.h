#ifndef TERN_IO_TLS_H
#define TERN_IO_TLS_H

#include <openssl/ssl.h>

/*
 * The server side of TLS, shared by every protocol: one SSL_CTX with the
 * configured certificate and key, TLS 1.2 at least, OpenSSL's modern
 * cipher defaults. Connections take it through conn_start_tls.
 */
SSL_CTX *tls_server_ctx_new(const char *cert_path, const char *key_path, char **error_r);

#endif
