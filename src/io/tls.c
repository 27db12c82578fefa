#include "io/tls.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/err.h>

#include "core/config.h"
#include "core/util.h"

struct tls_sni_entry {
	char *hostname; /* lower case; "*.example.org" matches one label */
	SSL_CTX *ctx;
};

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
	 * TLS 1.3: AES-128-GCM first (OpenSSL's default puts AES-256 first).
	 * It is as safe for mail, faster, and its SHA-256 handshake hash keeps
	 * about 200 bytes less per connection for as long as it is open.
	 */
	if (SSL_CTX_set_ciphersuites(ctx, "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:"
					  "TLS_CHACHA20_POLY1305_SHA256") != 1)
		abort();
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

static bool
sni_matches(const char *pattern, const char *name)
{
	if (strncmp(pattern, "*.", 2) == 0) {
		const char *dot = strchr(name, '.');
		return dot != NULL && dot != name && strcasecmp(dot + 1, pattern + 2) == 0;
	}
	return strcasecmp(pattern, name) == 0;
}

/* Called in the handshake: the client named a host; give it its certificate. */
static int
tls_on_servername(SSL *ssl, int *alert, void *arg)
{
	const struct tls_server *tls = arg;
	(void)alert;
	const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
	if (name == NULL)
		return SSL_TLSEXT_ERR_NOACK;
	for (size_t i = 0; i < tls->nsni; i++) {
		if (sni_matches(tls->sni[i].hostname, name)) {
			SSL_set_SSL_CTX(ssl, tls->sni[i].ctx);
			return SSL_TLSEXT_ERR_OK;
		}
	}
	/* Unknown names get the default certificate. */
	return SSL_TLSEXT_ERR_OK;
}

struct tls_server *
tls_server_new(const struct config *cfg, char **error_r)
{
	struct tls_server *tls = xcalloc(1, sizeof(*tls));
	if (cfg->tls_cert == NULL && cfg->tls_key == NULL && cfg->ntls_sni == 0)
		return tls;
	if (cfg->tls_cert == NULL || cfg->tls_key == NULL) {
		*error_r = xstrdup("tls_cert and tls_key go together (and tls_sni needs them)");
		goto fail;
	}
	tls->ctx = tls_server_ctx_new(cfg->tls_cert, cfg->tls_key, error_r);
	if (tls->ctx == NULL)
		goto fail;
	tls->sni = xcalloc(cfg->ntls_sni, sizeof(*tls->sni));
	for (size_t i = 0; i < cfg->ntls_sni; i++) {
		const struct config_sni *c = &cfg->tls_sni[i];
		tls->sni[i].hostname = xstrdup(c->hostname);
		tls->nsni++;
		tls->sni[i].ctx = tls_server_ctx_new(c->cert, c->key, error_r);
		if (tls->sni[i].ctx == NULL)
			goto fail;
	}
	/*
	 * The callback's argument is this struct: it must outlive every
	 * handshake begun with ctx, so the server frees old ones only at exit.
	 */
	SSL_CTX_set_tlsext_servername_callback(tls->ctx, tls_on_servername);
	SSL_CTX_set_tlsext_servername_arg(tls->ctx, tls);
	return tls;
fail:
	tls_server_free(&tls);
	return NULL;
}

void
tls_server_free(struct tls_server **tlsp)
{
	struct tls_server *tls = *tlsp;
	if (tls == NULL)
		return;
	for (size_t i = 0; i < tls->nsni; i++) {
		free(tls->sni[i].hostname);
		SSL_CTX_free(tls->sni[i].ctx);
	}
	free(tls->sni);
	SSL_CTX_free(tls->ctx);
	free(tls);
	*tlsp = NULL;
}
