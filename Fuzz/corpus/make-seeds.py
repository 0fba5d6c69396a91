#!/usr/bin/env python3
"""Writes the seeds of Fuzz/corpus/json and Fuzz/corpus/jwt (standard library only).

    python3 Fuzz/corpus/make-seeds.py

The tokens are signed here with hmac/base64, independently of the project's
JWTSigner, with the secrets that Fuzz/Sources/fuzz-jwt configures.
"""
import base64
import hashlib
import hmac
import json
import os

HERE = os.path.dirname(os.path.abspath(__file__))
SECRET_A = b"relay-fuzz-secret"
SECRET_B = b"relay-fuzz-rotated-secret"
HASHES = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def compact(value) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def token(payload, alg="HS256", secret=SECRET_A, header=None) -> bytes:
    header = header if header is not None else compact({"alg": alg, "typ": "JWT"})
    payload = payload if isinstance(payload, bytes) else compact(payload)
    signing_input = b64url(header) + "." + b64url(payload)
    digest = HASHES.get(alg, hashlib.sha256)
    signature = hmac.new(secret, signing_input.encode(), digest).digest()
    return (signing_input + "." + b64url(signature)).encode()


def write(target: str, name: str, data: bytes) -> None:
    folder = os.path.join(HERE, target)
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "seed-" + name), "wb") as f:
        f.write(data)


CLAIMS = {"pod_key": "pod-1", "runner_id": 7, "user_id": 42, "org_id": 3, "iss": "agentsmesh",
          "sub": "pod-1", "exp": 2000000000, "nbf": 1700000000, "iat": 1700000000}

JSON_SEEDS = {
    "object-mixed": b' {"a": [1, true, false, null, "x"], "b": {}, "c": []} \n',
    "relay-envelope": b'{"type":"input","pod_key":"pod-1","seq":12,"data":"aGVsbG8=","ack":[1,2,3]}',
    "claims": compact(CLAIMS),
    "scalars": b'[null,true,false,"",0,{}]',
    "depth-32": b"[" * 32 + b"]" * 32,
    "depth-33": b"[" * 33 + b"]" * 33,
    "depth-40-objects": b'{"a":' * 40 + b"1" + b"}" * 40,
    "unicode-escapes": b'"\\u0041\\u00e9\\u20AC\\u0000\\uD83D\\uDE00\\uffff\\u2028"',
    "surrogate-pair-key": b'{"\\ud83d\\ude00":"\\uDBFF\\uDFFF","\xf0\x9f\x98\x80\xc3\xa9":1}',
    "lone-high-surrogate": b'"\\uD83D"',
    "lone-low-surrogate": b'"\\uDE00"',
    "high-then-not-low": b'"\\uD83D\\u0041"',
    "escapes": b'"\\"\\\\\\/\\b\\f\\n\\r\\t\\u001f\x7f"',
    "numbers": b"[0,-0,1.5,-0.25,1e3,1E+2,25e-1,9007199254740993,1e-400,"
               b"1.7976931348623157e308,5e-324,-1.5e-7,123456789012345678901234567890]",
    "number-overflow": b"1e400",
    "number-long-then-small": b"1" + b"0" * 310 + b"e-10",
    "whitespace": b' \t\n\r{"k" : [ 1 , 2 ] }\r\n',
    "duplicate-key": b'{"a":1,"a":2}',
    "trailing-value": b"[1] [2]",
    "invalid-utf8": b'["\xc3\x28"]',
}

JWT_SEEDS = {
    "hs256-valid": token(CLAIMS, "HS256"),
    "hs384-valid": token(CLAIMS, "HS384"),
    "hs512-valid": token(CLAIMS, "HS512"),
    "hs256-rotated-secret": token({"pod_key": "p", "exp": 2000000000, "iss": "agentsmesh", "scope": "read",
                                   "role": "viewer"}, "HS256", SECRET_B),
    "hs256-expired": token({"exp": 1000, "iss": "agentsmesh"}),
    "hs256-not-yet-valid": token({"exp": 4000000000, "nbf": 3000000000, "iss": "agentsmesh"}),
    "hs256-no-exp": token({"pod_key": "p", "iss": "agentsmesh"}),
    "hs256-wrong-issuer": token({"exp": 2000000000, "iss": "someone-else"}),
    "hs256-float-dates": token(b'{"exp":2000000000.9,"nbf":-1.5,"runner_id":1e3,"user_id":null,"org_id":-0}'),
    "hs256-extreme-dates": token(b'{"exp":9223372036854775807,"nbf":-9223372036854775808,"iss":"agentsmesh"}'),
    "hs256-exp-beyond-int64": token(b'{"exp":9223372036854775808}'),
    "hs256-fractional-id": token(b'{"exp":2000000000,"runner_id":1.5}'),
    "hs256-wrong-type": token(b'{"exp":"soon","pod_key":7}'),
    "hs256-payload-array": token(b"[1]"),
    "hs256-unicode-claims": token(b'{"exp":2000000000,"iss":"agentsmesh","pod_key":"\\ud83d\\ude00 e\\u0301","sub":"\xc3\xa9"}'),
    "hs256-wrong-secret": token(CLAIMS, "HS256", b"not-a-configured-secret"),
    "alg-none": b64url(b'{"alg":"none","typ":"JWT"}').encode() + b"." + b64url(compact(CLAIMS)).encode() + b".",
    "alg-rs256": token(CLAIMS, "RS256"),
    "alg-missing": token(CLAIMS, header=b'{"typ":"JWT"}'),
    "duplicate-alg": token(CLAIMS, header=b'{"alg":"HS256","alg":"none"}'),
    "padded-part": token(CLAIMS).replace(b".", b"=.", 1),
    "four-parts": token(CLAIMS) + b".e30",
    "jwt-io-example": b"eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwi"
                      b"aWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c",
    # For the payload and header uses of each input.
    "payload-json": compact({"exp": 2000000000, "nbf": 1700000000, "iss": "agentsmesh", "pod_key": "pod-1"}),
    "header-json-hs512": compact({"alg": "HS512", "typ": "JWT"}),
    "base64-standard": base64.b64encode(bytes(range(0, 256, 7))),
}

if __name__ == "__main__":
    for name, data in JSON_SEEDS.items():
        write("json", name, data)
    for name, data in JWT_SEEDS.items():
        write("jwt", name, data)
    # tampered: the valid HS256 token with another payload and the old signature
    h, _, s = JWT_SEEDS["hs256-valid"].split(b".")
    forged = b64url(compact(dict(CLAIMS, pod_key="other"))).encode()
    write("jwt", "tampered-payload", h + b"." + forged + b"." + s)
