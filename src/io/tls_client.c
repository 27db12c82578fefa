#include "io/tls.h"

#include <openssl/err.h>

#include "core/util.h"

/*
 * The client side of TLS for relaying. Opportunistic STARTTLS to an MX
 * (RFC 3207, RFC 7435) encrypts without checking the certificate: an
 * unverified channel still beats clear text, and refusing it would only
 * push the mail into clear text. A smarthost the admin names is checked
 * against the system CA store or a given CA file, name included.
 */
SSL_CTX *
tls_client_ctx_new(bool verify, const char *ca_file, char **error_r)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	if (ctx == NULL)
		goto fail;
	/* RFC 8996 retires TLS 1.0 and 1.1. */
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE |
			      SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	if (!verify) {
		SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
		return ctx;
	}
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	int ok = ca_file != NULL ? SSL_CTX_load_verify_locations(ctx, ca_file, NULL)
				 : SSL_CTX_set_default_verify_paths(ctx);
	if (ok != 1)
		goto fail;
	return ctx;
fail:;
	char detail[256];
	ERR_error_string_n(ERR_get_error(), detail, sizeof(detail));
	ERR_clear_error();
	*error_r = xasprintf("cannot make a TLS client context%s%s: %s",
			     ca_file != NULL ? " with CA file " : "", ca_file != NULL ? ca_file : "",
			     detail);
	SSL_CTX_free(ctx);
	return NULL;
}
