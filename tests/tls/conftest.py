"""A throwaway PKI made with ``cryptography`` and ``f0mesh up`` processes that serve HTTPS.

The CA signs a server certificate for 127.0.0.1 and an operator's client certificate; a second,
unrelated CA signs a client certificate the node must refuse.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from nodes import TOKEN, NodeProcess, free_port


@dataclass
class Pki:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    rogue_ca: Path
    rogue_client_cert: Path
    rogue_client_key: Path

    def client_context(self, *, cert: tuple[Path, Path] | None = None) -> ssl.SSLContext:
        """Trusts the test CA only; presents ``cert`` (certificate, key) when given."""
        context = ssl.create_default_context(cafile=str(self.ca))
        if cert is not None:
            context.load_cert_chain(str(cert[0]), str(cert[1]))
        return context

    @property
    def client(self) -> tuple[Path, Path]:
        return self.client_cert, self.client_key

    @property
    def rogue_client(self) -> tuple[Path, Path]:
        return self.rogue_client_cert, self.rogue_client_key


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    path.chmod(0o600)


def _write_cert(path: Path, cert: x509.Certificate) -> None:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _make_ca(name: str) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(name))
        .issuer_name(_name(name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def _issue(
    ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey], name: str, *, server: bool
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    ca_cert, ca_key = ca
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(name))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
    )
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
    return builder.sign(ca_key, hashes.SHA256()), key


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    d = tmp_path_factory.mktemp("pki")
    ca = _make_ca("f0mesh test CA")
    rogue = _make_ca("someone else's CA")
    files: dict[str, Path] = {}
    for label, (cert, key) in {
        "server": _issue(ca, "127.0.0.1", server=True),
        "client": _issue(ca, "operator", server=False),
        "rogue_client": _issue(rogue, "operator", server=False),
    }.items():
        files[f"{label}_cert"] = d / f"{label}.pem"
        files[f"{label}_key"] = d / f"{label}.key"
        _write_cert(files[f"{label}_cert"], cert)
        _write_key(files[f"{label}_key"], key)
    _write_cert(d / "ca.pem", ca[0])
    _write_cert(d / "rogue-ca.pem", rogue[0])
    return Pki(ca=d / "ca.pem", rogue_ca=d / "rogue-ca.pem", **files)


class TlsNode(NodeProcess):
    """An ``f0mesh up`` serving HTTPS; ``http`` talks to the main port, trusting the test CA only.

    With ``admin=True`` the node also serves the mTLS admin port; ``admin_http`` presents the
    operator's client certificate there, with the bearer token.
    """

    def __init__(self, data_dir: Path, pki: Pki, *, admin: bool = False, extra: list[str] | None = None):
        tls = ["--tls-cert", str(pki.server_cert), "--tls-key", str(pki.server_key), "--tls-ca", str(pki.ca)]
        self.admin_port = free_port() if admin else None
        if admin:
            tls += ["--tls-client-ca", str(pki.ca), "--admin-port", str(self.admin_port)]
        super().__init__(data_dir, extra=[*tls, *(extra or [])])
        self.pki = pki
        self.url = f"https://127.0.0.1:{self.port}"
        self.http.close()
        self.http = self._client(self.url)
        self.admin_url = f"https://127.0.0.1:{self.admin_port}" if admin else None
        self.admin_http = self._client(self.admin_url, cert=pki.client) if self.admin_url else None

    def _client(self, base_url: str, **kwargs: Any) -> httpx.Client:
        return httpx.Client(
            base_url=base_url,
            timeout=30,
            headers={"Authorization": f"Bearer {TOKEN}"},
            verify=self.pki.client_context(**kwargs),
        )

    def close(self) -> None:
        # Clients first: a TLS server's graceful shutdown waits for each idle client's close_notify.
        if self.admin_http is not None:
            self.admin_http.close()
        self.http.close()
        self.stop()


@pytest.fixture
def tls_node_factory(tmp_path: Path, pki: Pki) -> Iterator[Any]:
    """Start TLS nodes; every one is stopped when the test ends, pass or fail."""
    started: list[TlsNode] = []

    def make(
        name: str = "n", *, admin: bool = False, extra: list[str] | None = None, start: bool = True
    ) -> TlsNode:
        node = TlsNode(tmp_path / f"{name}{len(started)}", pki, admin=admin, extra=extra)
        started.append(node)
        return node.start() if start else node

    yield make
    for node in started:
        node.close()
