"""TLS material for ``--tls``: a CA and a node certificate, made once under the data directory.

The layout follows EventStoreDB's certificate generator (``es-gen-certs``): ``ca/ca.crt``,
``ca/ca.key``, ``node/node.crt``, ``node/node.key``. Clients trust ``ca/ca.crt``
(``tlsCAFile=`` in the connection string). The node certificate names ``localhost``, the
machine's host name, the loopback addresses and whatever else the server is told to answer
to, as the real server's certificate must name the address clients dial.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import socket
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALID_DAYS = 825  # what es-gen-certs gives a node certificate by default
CA_VALID_DAYS = 1825


@dataclass(frozen=True, slots=True)
class TlsFiles:
    certificate: Path
    private_key: Path
    ca: Path | None  # what clients should trust (None: the certificate's own issuer is public)

    def server_credentials_material(self) -> tuple[bytes, bytes]:
        return self.private_key.read_bytes(), self.certificate.read_bytes()


def ensure(directory: Path, names: tuple[str, ...] = ()) -> TlsFiles:
    """The CA and node certificate under ``directory``, generated on first use.

    ``names`` are extra host names or IP addresses the node certificate must cover. A node
    certificate that lacks one of them is made again (the CA stays, so clients keep trusting).
    """
    ca_cert, ca_key = directory / "ca" / "ca.crt", directory / "ca" / "ca.key"
    node_cert, node_key = directory / "node" / "node.crt", directory / "node" / "node.key"
    if not ca_cert.exists():
        _write_ca(ca_cert, ca_key)
    wanted = _subject_names(names)
    if not node_cert.exists() or not wanted <= _names_in(node_cert):
        _write_node(node_cert, node_key, ca_cert, ca_key, wanted)
    return TlsFiles(node_cert, node_key, ca_cert)


def _subject_names(extra: tuple[str, ...]) -> set[str]:
    names = {"localhost", "127.0.0.1", "::1", socket.gethostname()}
    names.update(name for name in extra if name and name not in ("0.0.0.0", "::"))
    return names


def _names_in(path: Path) -> set[str]:
    certificate = x509.load_pem_x509_certificate(path.read_bytes())
    san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    dns = set(san.get_values_for_type(x509.DNSName))
    ips = {str(ip) for ip in san.get_values_for_type(x509.IPAddress)}
    return dns | ips


def _general_name(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def _private_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _write(path: Path, data: bytes, secret: bool) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if secret else 0o644)
    with os.fdopen(fd, "wb") as file:
        file.write(data)
    os.replace(temporary, path)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _write_ca(cert_path: Path, key_path: Path) -> None:
    key = _private_key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "esdblocal CA")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=CA_VALID_DAYS))
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
    _write(key_path, _key_pem(key), secret=True)
    _write(cert_path, certificate.public_bytes(serialization.Encoding.PEM), secret=False)


def _write_node(
    cert_path: Path, key_path: Path, ca_cert_path: Path, ca_key_path: Path, names: set[str]
) -> None:
    ca_certificate = x509.load_pem_x509_certificate(ca_cert_path.read_bytes())
    ca_key = serialization.load_pem_private_key(ca_key_path.read_bytes(), password=None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    key = _private_key()
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "eventstoredb-node")]))
        .issuer_name(ca_certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
        .add_extension(
            x509.SubjectAlternativeName([_general_name(n) for n in sorted(names)]), critical=False
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    _write(key_path, _key_pem(key), secret=True)
    _write(cert_path, certificate.public_bytes(serialization.Encoding.PEM), secret=False)


def user(directory: Path, name: str) -> tuple[Path, Path]:
    """A user certificate for ``name`` under ``directory`` (the CA's), made once, as
    ``es-gencert-cli create-user -username NAME`` lays it out: ``user-<name>/user-<name>.crt``
    and ``.key``. Common name ``name``, client authentication only, signed by the CA."""
    cert_path = directory / f"user-{name}" / f"user-{name}.crt"
    key_path = directory / f"user-{name}" / f"user-{name}.key"
    if cert_path.exists() and key_path.exists():
        return cert_path, key_path
    ca_certificate = x509.load_pem_x509_certificate((directory / "ca" / "ca.crt").read_bytes())
    ca_key = serialization.load_pem_private_key(
        (directory / "ca" / "ca.key").read_bytes(), password=None
    )
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    key = _private_key()
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca_certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    _write(key_path, _key_pem(key), secret=True)
    _write(cert_path, certificate.public_bytes(serialization.Encoding.PEM), secret=False)
    return cert_path, key_path


def user_name(pem: bytes) -> str | None:
    """The user a client certificate names, if it is a user certificate as KurrentDB's
    ``UserCertificateAuthenticationProvider`` accepts one: client authentication and not
    server authentication in its extended key usage; the user is its common name. (The
    chain to the node's CA and the validity dates were checked by the TLS handshake.)"""
    try:
        certificate = x509.load_pem_x509_certificate(pem)
        usage = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except (ValueError, x509.ExtensionNotFound):
        return None
    if ExtendedKeyUsageOID.CLIENT_AUTH not in usage or ExtendedKeyUsageOID.SERVER_AUTH in usage:
        return None
    names = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(names[0].value) if names else None
