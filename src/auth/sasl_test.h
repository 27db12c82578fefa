#ifndef TERN_AUTH_SASL_TEST_H
#define TERN_AUTH_SASL_TEST_H

/*
 * For unit tests only: the SCRAM server nonce of the following exchanges
 * (at most 63 printable characters, no ','), so that a test can replay the
 * example of RFC 7677 section 3 byte for byte. NULL: random again.
 */
void sasl_scram_test_set_nonce(const char *nonce);

#endif
