"""Certificates for the TLS tests, made once per session with the `openssl`
command-line tool (OpenSSL 3.0) in a temporary folder.

- `ca`: the test CA (EC P-256, like every key here);
- `server`: CN=relay-test-1, SAN IP:127.0.0.1 and DNS:localhost, signed by `ca`;
- `server2`: CN=relay-test-2, another serial, same SAN, signed by `ca` (the
  reload test swaps to it);
- `runner`: client certificate /CN=runner-1/O=mesh, signed by `ca`;
- `viewer`: client certificate /CN=viewer-1/O=mesh, signed by `ca` (a valid
  client that a runner-subject pattern does not match);
- `other_ca` and `foreign`: a second CA and a /CN=runner-1/O=mesh client
  certificate it signed (right subject, wrong issuer);
- `expired`: /CN=runner-1/O=mesh signed by `ca`, valid only in January 2020
  (made with `openssl ca -startdate/-enddate`).

`tls_certs.client_context(...)` gives a Python client `ssl.SSLContext` that
trusts `ca` (and presents a client certificate when asked);
`tls_certs.relay_args(...)` the relay's TLS flags.
"""

from __future__ import annotations

import shutil
import ssl
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

OPENSSL = "openssl"

# A minimal config so that the system's openssl.cnf cannot add extensions.
_REQ_CNF = """\
[req]
distinguished_name = dn
prompt = no
[dn]
"""

_SERVER_EXT = """\
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1, DNS:localhost
"""

_CLIENT_EXT = """\
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
"""

# `openssl ca`: the only way in OpenSSL 3.0 to give a certificate a validity
# that ended in the past.
_CA_CNF = """\
[ca]
default_ca = test_ca
[test_ca]
dir = {dir}
database = $dir/index.txt
new_certs_dir = $dir/newcerts
serial = $dir/serial
certificate = {cert}
private_key = {key}
default_md = sha256
policy = policy_any
unique_subject = no
copy_extensions = none
x509_extensions = client_ext
[policy_any]
commonName = supplied
organizationName = optional
[client_ext]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
"""


@dataclass(frozen=True)
class KeyPair:
    cert: Path
    key: Path
    subject: str  # OpenSSL one-line form, e.g. /CN=runner-1/O=mesh
    serial: int

    def der(self) -> bytes:
        return ssl.PEM_cert_to_DER_cert(self.cert.read_text())


@dataclass(frozen=True)
class TLSCerts:
    dir: Path
    ca: KeyPair
    server: KeyPair
    server2: KeyPair
    runner: KeyPair
    viewer: KeyPair
    other_ca: KeyPair
    foreign: KeyPair
    expired: KeyPair

    def client_context(self, client: KeyPair | None = None, *, trust: Path | None = None,
                       maximum: ssl.TLSVersion | None = None, minimum: ssl.TLSVersion | None = None,
                       alpn: list[str] | None = None) -> ssl.SSLContext:
        """A client context that verifies the relay against `ca` (or `trust`)
        and the host name/IP, and presents `client` if the relay asks."""
        ctx = ssl.create_default_context(cafile=str(trust or self.ca.cert))
        if client is not None:
            ctx.load_cert_chain(str(client.cert), str(client.key))
        if minimum is not None:
            ctx.minimum_version = minimum
        if maximum is not None:
            ctx.maximum_version = maximum
        if alpn is not None:
            ctx.set_alpn_protocols(alpn)
        return ctx

    def relay_args(self, server: KeyPair | None = None, *, cert: Path | None = None,
                   key: Path | None = None, client_ca: Path | None = None) -> list[str]:
        """`--tls --tls-cert … --tls-key …` (and `--tls-client-ca` for mTLS)."""
        server = server or self.server
        args = ["--tls", "--tls-cert", str(cert or server.cert), "--tls-key", str(key or server.key)]
        if client_ca is not None:
            args += ["--tls-client-ca", str(client_ca)]
        return args

    def copy_server_files(self, dest: Path, server: KeyPair | None = None) -> tuple[Path, Path]:
        """Copies of a server certificate and key (for tests that rewrite them)."""
        server = server or self.server
        dest.mkdir(parents=True, exist_ok=True)
        cert, key = dest / "server.pem", dest / "server.key"
        shutil.copyfile(server.cert, cert)
        shutil.copyfile(server.key, key)
        return cert, key


def _openssl(*args: str, cwd: Path) -> None:
    proc = subprocess.run([OPENSSL, *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}{proc.stderr}")


def _new_key_and_csr(d: Path, name: str, subject: str) -> tuple[Path, Path]:
    key, csr = d / f"{name}.key", d / f"{name}.csr"
    _openssl("req", "-config", "req.cnf", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
             "-nodes", "-keyout", key.name, "-out", csr.name, "-subj", subject, cwd=d)
    return key, csr


def _make_ca(d: Path, name: str, subject: str) -> KeyPair:
    key, cert = d / f"{name}.key", d / f"{name}.pem"
    _openssl("req", "-config", "req.cnf", "-x509", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
             "-nodes", "-keyout", key.name, "-out", cert.name, "-subj", subject, "-days", "30", "-sha256",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)
    return KeyPair(cert, key, subject, 0)


def _sign(d: Path, ca: KeyPair, name: str, subject: str, serial: int, ext: str) -> KeyPair:
    key, csr = _new_key_and_csr(d, name, subject)
    cert = d / f"{name}.pem"
    _openssl("x509", "-req", "-in", csr.name, "-CA", str(ca.cert), "-CAkey", str(ca.key),
             "-set_serial", str(serial), "-days", "30", "-sha256", "-extfile", ext, "-out", cert.name, cwd=d)
    return KeyPair(cert, key, subject, serial)


def _sign_expired(d: Path, ca: KeyPair, name: str, subject: str) -> KeyPair:
    key, csr = _new_key_and_csr(d, name, subject)
    ca_dir = d / "ca-db"
    (ca_dir / "newcerts").mkdir(parents=True)
    (ca_dir / "index.txt").write_text("")
    (ca_dir / "serial").write_text("5000\n")
    (d / "ca.cnf").write_text(_CA_CNF.format(dir=ca_dir, cert=ca.cert, key=ca.key))
    cert = d / f"{name}.pem"
    _openssl("ca", "-config", "ca.cnf", "-batch", "-notext", "-preserveDN",
             "-startdate", "20200101000000Z", "-enddate", "20200131000000Z",
             "-in", csr.name, "-out", cert.name, cwd=d)
    return KeyPair(cert, key, subject, 0x5000)


def make_certs(d: Path) -> TLSCerts:
    d.mkdir(parents=True, exist_ok=True)
    (d / "req.cnf").write_text(_REQ_CNF)
    (d / "server.ext").write_text(_SERVER_EXT)
    (d / "client.ext").write_text(_CLIENT_EXT)
    ca = _make_ca(d, "ca", "/CN=Relay Test CA/O=relay-tests")
    other_ca = _make_ca(d, "other-ca", "/CN=Other Test CA/O=elsewhere")
    certs = TLSCerts(
        dir=d,
        ca=ca,
        server=_sign(d, ca, "server", "/CN=relay-test-1/O=relay-tests", 0x1001, "server.ext"),
        server2=_sign(d, ca, "server2", "/CN=relay-test-2/O=relay-tests", 0x2002, "server.ext"),
        runner=_sign(d, ca, "runner", "/CN=runner-1/O=mesh", 0x3001, "client.ext"),
        viewer=_sign(d, ca, "viewer", "/CN=viewer-1/O=mesh", 0x3002, "client.ext"),
        other_ca=other_ca,
        foreign=_sign(d, other_ca, "foreign", "/CN=runner-1/O=mesh", 0x4001, "client.ext"),
        expired=_sign_expired(d, ca, "expired", "/CN=runner-1/O=mesh"),
    )
    _check(certs)
    return certs


def _check(c: TLSCerts) -> None:
    """The certificates are what the tests take them for (a broken generator
    would make refusal tests pass for the wrong reason)."""
    def verify(cert: KeyPair, ca: KeyPair, *extra: str) -> subprocess.CompletedProcess:
        return subprocess.run([OPENSSL, "verify", "-CAfile", str(ca.cert), *extra, str(cert.cert)],
                              capture_output=True, text=True, timeout=30)

    for kp, purpose in ((c.server, "sslserver"), (c.server2, "sslserver"),
                        (c.runner, "sslclient"), (c.viewer, "sslclient")):
        r = verify(kp, c.ca, "-purpose", purpose)
        assert r.returncode == 0, f"{kp.cert}: {r.stdout}{r.stderr}"
    r = verify(c.foreign, c.other_ca, "-purpose", "sslclient")
    assert r.returncode == 0, f"{c.foreign.cert}: {r.stdout}{r.stderr}"
    assert verify(c.foreign, c.ca).returncode != 0, "the other CA's client certificate verifies against the test CA"
    r = verify(c.expired, c.ca, "-purpose", "sslclient")
    assert r.returncode != 0 and "expired" in (r.stdout + r.stderr), f"expired certificate: {r.stdout}{r.stderr}"
    # ... and only expired: without the time checks it verifies.
    r = verify(c.expired, c.ca, "-purpose", "sslclient", "-no_check_time")
    assert r.returncode == 0, f"expired certificate is broken in another way: {r.stdout}{r.stderr}"
    for kp in (c.runner, c.foreign, c.expired, c.viewer, c.server, c.server2):
        r = subprocess.run([OPENSSL, "x509", "-noout", "-subject", "-nameopt", "compat", "-in", str(kp.cert)],
                           capture_output=True, text=True, timeout=30)
        assert r.stdout.strip() == f"subject={kp.subject}", (r.stdout, kp.subject)
    assert c.server.der() != c.server2.der()


@pytest.fixture(scope="session")
def tls_certs(tmp_path_factory) -> TLSCerts:
    if shutil.which(OPENSSL) is None:
        pytest.fail("the openssl command-line tool is not installed (scripts/setup.sh installs it)")
    return make_certs(tmp_path_factory.mktemp("tls-certs"))
