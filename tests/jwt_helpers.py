"""Real keys and JWTs for the authentication tests, built like the CDS Hooks sandbox and Epic build them."""

from __future__ import annotations

import time
import uuid
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from fastapi.testclient import TestClient
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

ISS = "https://ehr.example.org"
JKU = "https://ehr.example.org/.well-known/jwks.json"


class KeyPair:
    def __init__(self, alg: str = "ES384", kid: str | None = None) -> None:
        self.alg = alg
        self.kid = kid or str(uuid.uuid4())
        if alg.startswith("ES"):
            curve = {"ES256": ec.SECP256R1(), "ES384": ec.SECP384R1()}[alg]
            self.private: Any = ec.generate_private_key(curve)
            self.public_jwk: dict[str, Any] = ECAlgorithm.to_jwk(self.private.public_key(), as_dict=True)
        else:
            self.private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            self.public_jwk = RSAAlgorithm.to_jwk(self.private.public_key(), as_dict=True)
        self.public_jwk.update(kid=self.kid, alg=alg, use="sig")

    def jwks(self) -> dict[str, Any]:
        return {"keys": [self.public_jwk]}


def token(
    key: KeyPair,
    aud: str | list[str],
    *,
    iss: str = ISS,
    header: dict[str, Any] | None = None,
    drop: tuple[str, ...] = (),
    alg: str | None = None,
    signing_key: Any = None,
    **claims: Any,
) -> str:
    """A signed client JWT; ``claims`` override the defaults, ``drop`` removes claims."""
    now = int(time.time())
    payload: dict[str, Any] = {"iss": iss, "aud": aud, "exp": now + 300, "iat": now, "jti": str(uuid.uuid4())}
    payload.update(claims)
    for name in drop:
        payload.pop(name, None)
    headers = {"kid": key.kid, "typ": "JWT", "jku": JKU}
    headers.update(header or {})
    # typ=None must reach PyJWT, which otherwise adds "typ": "JWT" by itself.
    headers = {k: v for k, v in headers.items() if v is not None or k == "typ"}
    return jwt.encode(payload, signing_key or key.private, algorithm=alg or key.alg, headers=headers)


class SigningClient(TestClient):
    """A test client that signs every request (but preflights) with a fresh JWT for the URL called."""

    def __init__(self, app: Any, key: KeyPair) -> None:
        super().__init__(app)
        self.key = key

    def request(self, method: str, url: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        headers = dict(kwargs.pop("headers", None) or {})
        if method.upper() != "OPTIONS" and "Authorization" not in headers:
            called = str(url) if str(url).startswith("http") else f"http://testserver{url}"
            headers["Authorization"] = f"Bearer {token(self.key, called.split('?')[0])}"
        return super().request(method, url, headers=headers, **kwargs)


def hmac_token(secret: bytes, alg: str, kid: str, aud: str) -> str:
    """An HS256/HS384 token signed by hand (PyJWT rightly refuses to use a public key as an HMAC secret)."""
    import base64
    import hashlib
    import hmac
    import json

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    now = int(time.time())
    header = b64(json.dumps({"alg": alg, "typ": "JWT", "kid": kid}).encode())
    payload = b64(json.dumps({"iss": ISS, "aud": aud, "exp": now + 300, "iat": now, "jti": str(uuid.uuid4())}).encode())
    digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384}[alg]
    signature = hmac.new(secret, f"{header}.{payload}".encode(), digest).digest()
    return f"{header}.{payload}.{b64(signature)}"
