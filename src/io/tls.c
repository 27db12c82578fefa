#include "io/tls.h"

#include <openssl/err.h>

#include "core/util.h"

static char *
tls_error(const char *what, const char *path)
{
	char detail[256];
	ERR_error_string_n(ERR_get_error(), detail, sizeof(detail));
	ERR_clear_error();
	return xasprintf("%s%s%s: %s", what, path ? " " : "", path ? path : "", detail);
}

SSL_CTX *
tls_server_ctx_new(const char *cert_path, const char *key_path, char **error_r)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	if (ctx == NULL) {
		*error_r = tls_error("cannot create a TLS context", NULL);
		return NULL;
	}
	/* RFC 8996 retires TLS 1.0 and 1.1. */
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
				 SSL_OP_CIPHER_SERVER_PREFERENCE);
	/*
	 * Idle sessions must cost little: release OpenSSL's read and write
	 * buffers whenever they are empty. Writes come from an evbuffer that
	 * may move between retries.
	 */
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE |
			      SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	if (SSL_CTX_use_certificate_chain_file(ctx, cert_path) != 1) {
		*error_r = tls_error("cannot load certificate", cert_path);
		SSL_CTX_free(ctx);
		return NULL;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, key_path, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_check_private_key(ctx) != 1) {
		*error_r = tls_error("cannot load key", key_path);
		SSL_CTX_free(ctx);
		return NULL;
	}
	return ctx;
}
