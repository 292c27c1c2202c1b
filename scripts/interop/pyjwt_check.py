"""Cross-checks Coffer's RS256 tokens against PyJWT, an independent implementation.

Usage: pyjwt_check.py DIR
  DIR/jwks.json     Coffer's JWK Set
  DIR/token         a token Coffer signed
  DIR/issuer, DIR/audience
  DIR/key.pk8       optional: the signing key, PKCS#8 DER (test keys only)
  DIR/bcrypt.json  optional: [[secret, stored bcrypt hash], ...] pairs that should match
Writes:
  DIR/verified.json the claims PyJWT verified from DIR/token
  DIR/pyjwt_token   with key.pk8: a token PyJWT signed with the same key and kid
  DIR/bcrypt.txt    with bcrypt.json: one "match mismatch" line per pair when the secret
                    matches its hash and a altered secret does not
Exits non-zero if PyJWT refuses Coffer's token.
"""

import json
import pathlib
import sys

import jwt
from cryptography.hazmat.primitives.serialization import load_der_private_key

directory = pathlib.Path(sys.argv[1])
jwks = json.loads((directory / "jwks.json").read_text())
token = (directory / "token").read_text()
issuer = (directory / "issuer").read_text()
audience = (directory / "audience").read_text()

header = jwt.get_unverified_header(token)
key = jwt.PyJWKSet.from_dict(jwks)[header["kid"]]
claims = jwt.decode(
    token,
    key.key,
    algorithms=["RS256"],
    audience=audience,
    issuer=issuer,
    options={"require": ["exp", "iat", "nbf", "iss", "aud", "sub"]},
)
(directory / "verified.json").write_text(json.dumps(claims))

if (directory / "key.pk8").exists():
    private_key = load_der_private_key((directory / "key.pk8").read_bytes(), password=None)
    reissued = dict(claims, jti="signed-by-pyjwt")
    (directory / "pyjwt_token").write_text(
        jwt.encode(reissued, private_key, algorithm="RS256", headers={"kid": header["kid"]})
    )

if (directory / "bcrypt.json").exists():
    import bcrypt

    lines = []
    for secret, stored in json.loads((directory / "bcrypt.json").read_text()):
        secret, stored = secret.encode(), stored.encode()
        right = "match" if bcrypt.checkpw(secret, stored) else "mismatch"
        wrong = "match" if bcrypt.checkpw(secret + b"x", stored) else "mismatch"
        lines.append(f"{right} {wrong}")
    (directory / "bcrypt.txt").write_text("\n".join(lines))
