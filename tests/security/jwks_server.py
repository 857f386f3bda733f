"""A real JWKS endpoint on 127.0.0.1 for the tests: it can be slow, fail, answer garbage or
rotate keys, and it counts the fetches it served."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt as pyjwt
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

AUD = "authenticated"


@dataclass
class KeyPair:
    kid: str
    alg: str
    private: Any

    @property
    def jwk(self) -> dict[str, Any]:
        algorithm = {"RS256": pyjwt.algorithms.RSAAlgorithm, "ES256": pyjwt.algorithms.ECAlgorithm,
                     "EdDSA": pyjwt.algorithms.OKPAlgorithm}[self.alg]
        jwk = json.loads(algorithm.to_jwk(self.private.public_key()))
        jwk.update(kid=self.kid, use="sig")
        return jwk  # no `alg` member, as many providers publish them


def rsa_key(kid: str) -> KeyPair:
    return KeyPair(kid, "RS256", rsa.generate_private_key(public_exponent=65537, key_size=2048))


def ec_key(kid: str) -> KeyPair:
    return KeyPair(kid, "ES256", ec.generate_private_key(ec.SECP256R1()))


def ed_key(kid: str) -> KeyPair:
    return KeyPair(kid, "EdDSA", ed25519.Ed25519PrivateKey.generate())


def user_claims(user: str = "u-jwks", ttl: float = 600) -> dict[str, Any]:
    return {"sub": user, "aud": AUD, "role": "authenticated", "exp": int(time.time() + ttl)}


def sign(pair: KeyPair, *, kid: str | None = None, alg: str | None = None,
         claims: dict[str, Any] | None = None) -> str:
    """A token signed by ``pair``, with a header that may name another kid or algorithm."""
    return pyjwt.encode(claims or user_claims(), pair.private, algorithm=alg or pair.alg,
                        headers={"kid": kid or pair.kid})


@dataclass
class JwksServer:
    keys: list[KeyPair] = field(default_factory=list)
    delay: float = 0.0
    status: int = 200
    body: bytes | None = None  # served as is instead of the key set (garbage)
    requests: int = 0
    url: str = ""

    def document(self) -> bytes:
        if self.body is not None:
            return self.body
        return json.dumps({"keys": [k.jwk for k in self.keys]}).encode()


@contextmanager
def jwks_server(*keys: KeyPair) -> Iterator[JwksServer]:
    state = JwksServer(list(keys))
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            with lock:
                state.requests += 1
            if state.delay:
                time.sleep(state.delay)
            body = state.document()
            try:
                self.send_response(state.status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except OSError:
                pass  # the client gave up waiting

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state.url = f"http://127.0.0.1:{server.server_port}/auth/v1/.well-known/jwks.json"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
