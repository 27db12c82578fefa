"""TLS helpers for the integration tests: a self-signed certificate made with
the openssl tool, client contexts that trust it, and a raw line client whose
socket can be switched to TLS in the middle (STARTTLS, STLS).
"""

import base64
import hashlib
import hmac
import os
import ssl
import subprocess
from pathlib import Path

from tern_harness import HOSTNAME, TIMEOUT, Raw, free_ports


def make_cert(directory, cn=HOSTNAME):
    """Writes cert.pem and key.pem (RSA 2048, SAN name and 127.0.0.1) into
    directory; returns (cert_path, key_path)."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    cert, key = d / "cert.pem", d / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", f"/CN={cn}",
         "-addext", f"subjectAltName=DNS:{cn},IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=TIMEOUT * 3)
    os.chmod(key, 0o600)
    return str(cert), str(key)


def tls_settings(cert, key, *protos):
    """Settings for tern_factory: the certificate and one free loopback port
    per implicit-TLS protocol named (listen__pop3s ...). Returns (settings,
    {proto: port})."""
    ports = dict(zip(protos, free_ports(len(protos))))
    settings = {"tls_cert": cert, "tls_key": key}
    for proto, port in ports.items():
        settings[f"listen__{proto}"] = f"127.0.0.1:{port}"
    return settings, ports


def client_context(cafile):
    """A client context that verifies the server against our certificate."""
    ctx = ssl.create_default_context(cafile=cafile)
    ctx.check_hostname = True
    return ctx


class RawTLS(Raw):
    """Raw with starttls(): wraps the socket once the server said go."""

    def __init__(self, port, host="127.0.0.1", ctx=None, implicit=False):
        super().__init__(port, host)
        self.ctx = ctx
        if implicit:
            self.starttls()

    def starttls(self):
        # Nothing may be buffered: what came in clear is not to be trusted.
        assert self.buf == b"", f"data after the STARTTLS reply: {self.buf!r}"
        self.sock = self.ctx.wrap_socket(self.sock, server_hostname=HOSTNAME)
        self.sock.settimeout(TIMEOUT)

    def version(self):
        return self.sock.version()


# --- SCRAM-SHA-256 client (RFC 5802, RFC 7677) ---------------------------

def _b64(b):
    return base64.b64encode(b).decode()


class ScramClient:
    """The client side of one SCRAM-SHA-256 exchange, messages as bytes."""

    def __init__(self, user, password, nonce=None):
        self.user = user.replace("=", "=3D").replace(",", "=2C")
        self.password = password
        self.nonce = nonce or _b64(os.urandom(18))
        self.gs2 = "n,,"
        self.first_bare = f"n={self.user},r={self.nonce}"
        self.server_signature = None

    def first(self):
        return (self.gs2 + self.first_bare).encode()

    def final(self, server_first):
        sf = server_first.decode()
        attrs = dict(a.split("=", 1) for a in sf.split(","))
        nonce, salt, it = attrs["r"], base64.b64decode(attrs["s"]), int(attrs["i"])
        assert nonce.startswith(self.nonce) and len(nonce) > len(self.nonce)
        salted = hashlib.pbkdf2_hmac("sha256", self.password.encode(), salt, it)
        client_key = hmac.new(salted, b"Client Key", "sha256").digest()
        stored_key = hashlib.sha256(client_key).digest()
        without_proof = f"c={_b64(self.gs2.encode())},r={nonce}"
        auth_message = f"{self.first_bare},{sf},{without_proof}".encode()
        client_sig = hmac.new(stored_key, auth_message, "sha256").digest()
        proof = bytes(a ^ b for a, b in zip(client_key, client_sig))
        server_key = hmac.new(salted, b"Server Key", "sha256").digest()
        self.server_signature = hmac.new(server_key, auth_message, "sha256").digest()
        return f"{without_proof},p={_b64(proof)}".encode()

    def verify(self, server_final):
        """True if the server proved it knows the password's secrets."""
        sf = server_final.decode()
        assert sf.startswith("v="), f"server-final {sf!r}"
        return hmac.compare_digest(base64.b64decode(sf[2:]), self.server_signature)
