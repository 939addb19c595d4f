"""A self-signed certificate for local gRPC endpoints, trusted by every gRPC client of the process.

Google's gRPC clients (google-api-core) always open a TLS channel when they hold credentials,
even anonymous ones, so a local endpoint must speak TLS with a certificate the client trusts.
gRPC's C core reads ``GRPC_DEFAULT_SSL_ROOTS_FILE_PATH`` once per process, at the first TLS
channel, so ``install_roots()`` must run before any test creates one: tests/fakes/fixtures.py
calls it when pytest loads it. The roots file is gRPC's own bundle plus this certificate, so
channels to real Google endpoints (system tests) still verify as before; subprocesses inherit it.
"""

from __future__ import annotations

import atexit
import datetime as dt
import importlib.util
import ipaddress
import os
import shutil
import tempfile
from functools import lru_cache
from pathlib import Path

HOST = "127.0.0.1"


@lru_cache(maxsize=1)
def key_and_cert() -> tuple[bytes, bytes]:
    """A fresh EC key and a certificate for 127.0.0.1 and localhost (PEM), made once per process."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "airflow-ml-provider test endpoint")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(HOST)), x509.DNSName("localhost")]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return key_pem, cert.public_bytes(serialization.Encoding.PEM)


def install_roots() -> Path:
    """Point gRPC's default roots at its bundled roots plus the test certificate; return the file."""
    current = os.environ.get("GRPC_DEFAULT_SSL_ROOTS_FILE_PATH")
    _, cert = key_and_cert()
    if current and Path(current).is_file() and cert in Path(current).read_bytes():
        return Path(current)
    # Located without importing grpc: its core may read its configuration (this variable) on import.
    spec = importlib.util.find_spec("grpc")
    assert spec is not None and spec.origin is not None, "grpcio is not installed"
    bundled = Path(spec.origin).parent / "_cython" / "_credentials" / "roots.pem"
    folder = Path(tempfile.mkdtemp(prefix="aml-grpc-roots-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    roots = folder / "roots.pem"
    roots.write_bytes(bundled.read_bytes() + b"\n" + cert)
    os.environ["GRPC_DEFAULT_SSL_ROOTS_FILE_PATH"] = str(roots)
    return roots


def server_credentials():
    """grpc.ServerCredentials serving the test certificate."""
    import grpc

    key, cert = key_and_cert()
    return grpc.ssl_server_credentials([(key, cert)])
