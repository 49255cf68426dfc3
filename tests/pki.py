"""A throw-away PKI for the TLS tests: a CA, a server and a client it signed, and an intruder
signed by another CA (certificates valid for a day, EC P-256 keys)."""

from __future__ import annotations

import datetime
import ipaddress
from pathlib import Path

import pytest


def make_pki(folder: Path) -> dict:
    """``{"server"|"client"|"intruder": (cert.pem, key), "ca": ca.pem}`` written into ``folder``."""
    crypto = pytest.importorskip("cryptography")
    del crypto
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)

    def name(cn):
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def cert(subject, key, issuer, issuer_key, ca=False, server=False):
        builder = (
            x509.CertificateBuilder()
            .subject_name(name(subject))
            .issuer_name(name(issuer))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if ca:
            builder = builder.add_extension(
                x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True
            )
        else:
            usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
            builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        if server:
            builder = builder.add_extension(
                x509.SubjectAlternativeName(
                    [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
                ),
                critical=False,
            )
        return builder.sign(issuer_key, hashes.SHA256())

    def write(stem, key, crt):
        (folder / f"{stem}.key").write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        (folder / f"{stem}.pem").write_bytes(crt.public_bytes(serialization.Encoding.PEM))

    keys = {n: ec.generate_private_key(ec.SECP256R1()) for n in ("ca", "rogue", "server", "client", "intruder")}
    ca = cert("pacscore test CA", keys["ca"], "pacscore test CA", keys["ca"], ca=True)
    write("ca", keys["ca"], ca)
    write("server", keys["server"], cert("localhost", keys["server"], "pacscore test CA", keys["ca"], server=True))
    write("client", keys["client"], cert("GOODSCU", keys["client"], "pacscore test CA", keys["ca"]))
    write("intruder", keys["intruder"], cert("EVILSCU", keys["intruder"], "rogue CA", keys["rogue"]))
    return {n: (folder / f"{n}.pem", folder / f"{n}.key") for n in ("server", "client", "intruder")} | {
        "ca": folder / "ca.pem"
    }
