"""Building CSRs the way a subscriber would, including hostile ones."""

from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from certificates.crypto.keys import generate_private_key


def general_names(sans: list[str]) -> list[x509.GeneralName]:
    import ipaddress

    names: list[x509.GeneralName] = []
    for san in sans:
        kind, _, value = san.partition(":")
        if kind == "DNS":
            names.append(x509.DNSName(value))
        elif kind == "IP":
            names.append(x509.IPAddress(ipaddress.ip_address(value)))
        else:
            names.append(x509.RFC822Name(value))
    return names


def make_csr(common_name: str | None = "www.example.com", sans: list[str] | None = None, key=None,
             key_type: str = "ec-p256", ca: bool = False) -> bytes:
    key = key or generate_private_key(key_type)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)] if common_name else [])
    builder = x509.CertificateSigningRequestBuilder().subject_name(subject)
    if sans is None:
        sans = [f"DNS:{common_name}"] if common_name else []
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(general_names(sans)), critical=False)
    if ca:
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
    algorithm = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return builder.sign(key, algorithm).public_bytes(Encoding.PEM)


def weak_rsa_csr() -> bytes:
    return make_csr(key=rsa.generate_private_key(public_exponent=65537, key_size=1024))


def tampered_csr() -> bytes:
    """A CSR whose signature no longer matches: one byte of the DER flipped inside the subject."""
    der = bytearray(x509.load_pem_x509_csr(make_csr()).public_bytes(Encoding.DER))
    index = der.find(b"www.example.com")
    der[index] ^= 0x01
    return bytes(der)


def ec_key():
    return ec.generate_private_key(ec.SECP256R1())
