"""Read certificates and CSRs and explain them in plain words (staff pages, admin, toolbox).

Read-only: nothing here signs, stores or opens a key. Input is untrusted (the
toolbox decoder takes any paste or upload), so parsing failures become one
readable `DecodeError` and sizes are bounded before parsing.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, ExtensionOID

MAX_INPUT_BYTES = 64 * 1024

KEY_USAGE_WORDS = {
    "digital_signature": "make digital signatures (e.g. in a TLS handshake)",
    "content_commitment": "sign content with non-repudiation",
    "key_encipherment": "encrypt keys (RSA key transport)",
    "data_encipherment": "encrypt data directly",
    "key_agreement": "agree on keys (e.g. ECDH)",
    "key_cert_sign": "sign certificates (it is a CA)",
    "crl_sign": "sign revocation lists (CRLs)",
}
EKU_WORDS = {
    ExtendedKeyUsageOID.SERVER_AUTH: "TLS server: a web or API server may present it",
    ExtendedKeyUsageOID.CLIENT_AUTH: "TLS client: a client may log in with it (mutual TLS)",
    ExtendedKeyUsageOID.EMAIL_PROTECTION: "e-mail protection (S/MIME signing and encryption)",
    ExtendedKeyUsageOID.CODE_SIGNING: "code signing",
    ExtendedKeyUsageOID.OCSP_SIGNING: "signing OCSP answers (a delegated OCSP responder)",
    ExtendedKeyUsageOID.TIME_STAMPING: "time stamping",
}


class DecodeError(ValueError):
    """The input is not a certificate or CSR this page can read; the message says so plainly."""


@dataclass(frozen=True)
class ExtensionLine:
    name: str
    critical: bool
    meaning: str


@dataclass
class Description:
    """What a certificate or CSR says, field by field, plus plain-language sentences."""

    kind: str  # "certificate" or "csr"
    subject: str
    common_name: str
    key: str
    signature_algorithm: str
    sans: list[str] = field(default_factory=list)
    extensions: list[ExtensionLine] = field(default_factory=list)
    sentences: list[str] = field(default_factory=list)
    # certificates only
    issuer: str = ""
    serial: str = ""
    not_before: datetime | None = None
    not_after: datetime | None = None
    is_ca: bool = False
    self_signed: bool = False
    sha256: str = ""
    sha1: str = ""
    # CSRs only
    signature_valid: bool | None = None


def describe_key(public_key: object) -> str:
    if isinstance(public_key, rsa.RSAPublicKey):
        return f"RSA {public_key.key_size}-bit"
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        return f"EC {public_key.curve.name} ({public_key.key_size}-bit)"
    if isinstance(public_key, ed25519.Ed25519PublicKey):
        return "Ed25519"
    if isinstance(public_key, ed448.Ed448PublicKey):
        return "Ed448"
    if isinstance(public_key, dsa.DSAPublicKey):
        return f"DSA {public_key.key_size}-bit (obsolete)"
    return "an unknown key type"


def _signature_algorithm(item: x509.Certificate | x509.CertificateSigningRequest) -> str:
    try:
        name = item.signature_algorithm_oid._name
    except Exception:  # an OID cryptography does not name
        return "unknown"
    return name or item.signature_algorithm_oid.dotted_string


def format_general_name(name: x509.GeneralName) -> str:
    if isinstance(name, x509.DNSName):
        return f"DNS:{name.value}"
    if isinstance(name, x509.IPAddress):
        return f"IP:{name.value}"
    if isinstance(name, x509.RFC822Name):
        return f"EMAIL:{name.value}"
    if isinstance(name, x509.UniformResourceIdentifier):
        return f"URI:{name.value}"
    if isinstance(name, x509.DirectoryName):
        return f"DirName:{name.value.rfc4514_string()}"
    return f"{type(name).__name__}:{getattr(name, 'value', '')}"


def _common_name(name: x509.Name) -> str:
    values = name.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    return str(values[0].value) if values else ""


def _fingerprint(der: bytes, algorithm: str) -> str:
    digest = hashlib.new(algorithm, der).hexdigest().upper()
    return ":".join(digest[i:i + 2] for i in range(0, len(digest), 2))


def _key_usage_meaning(value: x509.KeyUsage) -> str:
    allowed = []
    for flag, words in KEY_USAGE_WORDS.items():
        try:
            if getattr(value, flag):
                allowed.append(words)
        except ValueError:  # encipher_only/decipher_only without key_agreement
            continue
    return "The key may " + "; ".join(allowed) + "." if allowed else "No key usage is allowed."


def _eku_meaning(value: x509.ExtendedKeyUsage) -> str:
    uses = [EKU_WORDS.get(oid, oid._name if oid._name != "Unknown OID" else oid.dotted_string) for oid in value]
    return "Accepted for: " + "; ".join(uses) + "."


def _urls(descriptions) -> list[str]:
    urls = []
    for description in descriptions:
        location = getattr(description, "access_location", None)
        names = [location] if location is not None else list(getattr(description, "full_name", None) or [])
        urls.extend(str(name.value) for name in names)
    return urls


def _extension_meaning(ext: x509.Extension) -> str:
    value = ext.value
    if isinstance(value, x509.BasicConstraints):
        if not value.ca:
            return "Not a CA: it cannot sign other certificates."
        depth = "any number of" if value.path_length is None else f"at most {value.path_length}"
        return f"A CA: it may sign certificates, with {depth} CA level(s) below it."
    if isinstance(value, x509.KeyUsage):
        return _key_usage_meaning(value)
    if isinstance(value, x509.ExtendedKeyUsage):
        return _eku_meaning(value)
    if isinstance(value, x509.SubjectAlternativeName):
        return "Names it is valid for: " + ", ".join(format_general_name(n) for n in value) + "."
    if isinstance(value, x509.CRLDistributionPoints):
        return "Revocation list (CRL) published at: " + ", ".join(_urls(value)) + "."
    if isinstance(value, x509.FreshestCRL):
        return "Delta CRLs (the latest changes between full CRLs) published at: " + ", ".join(_urls(value)) + "."
    if isinstance(value, x509.AuthorityInformationAccess):
        return "Issuer details and OCSP status at: " + ", ".join(_urls(value)) + "."
    if isinstance(value, x509.SubjectKeyIdentifier):
        return f"Identifies this key: {value.digest.hex()}."
    if isinstance(value, x509.AuthorityKeyIdentifier):
        return f"Identifies the issuer's key: {(value.key_identifier or b'').hex() or 'not given'}."
    if isinstance(value, x509.NameConstraints):
        permitted = ", ".join(format_general_name(n) for n in value.permitted_subtrees or []) or "any"
        excluded = ", ".join(format_general_name(n) for n in value.excluded_subtrees or []) or "none"
        return f"Limits the names it may sign: permitted {permitted}; excluded {excluded}."
    if isinstance(value, x509.CertificatePolicies):
        return "Policies: " + ", ".join(p.policy_identifier.dotted_string for p in value) + "."
    return "Present (this page does not explain it further)."


def _extension_lines(extensions: x509.Extensions) -> list[ExtensionLine]:
    lines = []
    for ext in extensions:
        name = ext.oid._name if ext.oid._name != "Unknown OID" else ext.oid.dotted_string
        lines.append(ExtensionLine(name=name, critical=ext.critical, meaning=_extension_meaning(ext)))
    return lines


def _sans(extensions: x509.Extensions) -> list[str]:
    try:
        san = extensions.get_extension_for_oid(ExtensionOID.SUBJECT_ALTERNATIVE_NAME).value
    except x509.ExtensionNotFound:
        return []
    return [format_general_name(name) for name in san]


def _is_ca(extensions: x509.Extensions) -> bool:
    try:
        return bool(extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def _validity_sentence(not_before: datetime, not_after: datetime, now: datetime) -> str:
    if now < not_before:
        return f"It is not valid yet: it starts on {not_before:%Y-%m-%d %H:%M} UTC."
    if now >= not_after:
        return f"It has expired: it ended on {not_after:%Y-%m-%d %H:%M} UTC."
    days = (not_after - now).days
    return f"It is within its validity period and expires in {days} day(s), on {not_after:%Y-%m-%d} UTC."


def describe_certificate(certificate: x509.Certificate, now: datetime | None = None) -> Description:
    now = now or datetime.now(UTC)
    der = certificate.public_bytes(serialization.Encoding.DER)
    extensions = certificate.extensions
    is_ca = _is_ca(extensions)
    self_signed = certificate.issuer == certificate.subject
    sans = _sans(extensions)
    common_name = _common_name(certificate.subject)
    description = Description(
        kind="certificate", subject=certificate.subject.rfc4514_string(), common_name=common_name,
        key=describe_key(certificate.public_key()), signature_algorithm=_signature_algorithm(certificate),
        sans=sans, extensions=_extension_lines(extensions), issuer=certificate.issuer.rfc4514_string(),
        serial=format(certificate.serial_number, "x"), not_before=certificate.not_valid_before_utc,
        not_after=certificate.not_valid_after_utc, is_ca=is_ca, self_signed=self_signed,
        sha256=_fingerprint(der, "sha256"), sha1=_fingerprint(der, "sha1"),
    )
    who = f"“{common_name}”" if common_name else "a subject without a common name"
    if is_ca:
        role = "a root CA certificate (it signed itself)" if self_signed else "an intermediate CA certificate"
    else:
        role = "an end-entity certificate (for a server, client or person, not a CA)"
    description.sentences = [
        f"This is {role} for {who}.",
        f"It was issued by {_common_name(certificate.issuer) or certificate.issuer.rfc4514_string()}.",
        _validity_sentence(description.not_before, description.not_after, now),
        f"Its key is {description.key}, signed with {description.signature_algorithm}.",
        ("It is valid for these names: " + ", ".join(sans) + ".") if sans
        else "It names no subject alternative names.",
    ]
    return description


def describe_csr(csr: x509.CertificateSigningRequest) -> Description:
    try:
        extensions = csr.extensions
    except Exception:  # a malformed extension: show what is readable
        extensions = x509.Extensions([])
    sans = _sans(extensions)
    common_name = _common_name(csr.subject)
    try:
        signature_valid = bool(csr.is_signature_valid)
    except Exception:
        signature_valid = False
    description = Description(
        kind="csr", subject=csr.subject.rfc4514_string(), common_name=common_name,
        key=describe_key(csr.public_key()), signature_algorithm=_signature_algorithm(csr), sans=sans,
        extensions=_extension_lines(extensions), is_ca=_is_ca(extensions), signature_valid=signature_valid,
    )
    who = f"“{common_name}”" if common_name else "a subject without a common name"
    description.sentences = [
        f"This is a certificate signing request (CSR) for {who}: someone asks a CA to certify their key.",
        f"The key is {description.key}; the private key stays with whoever made the request.",
        "Its signature is valid: the requester holds the private key." if signature_valid
        else "Its signature does NOT verify: the request was altered or is broken; do not issue from it.",
        ("It asks for these names: " + ", ".join(sans) + ".") if sans
        else "It asks for no subject alternative names; the common name would be used.",
    ]
    if description.is_ca:
        description.sentences.append("It asks to become a CA; this PKI refuses such requests.")
    return description


def decode(data: bytes | str) -> Description:
    """A certificate or a CSR, PEM or DER; the first one when several PEM blocks are pasted."""
    raw = data.encode("utf-8", "replace") if isinstance(data, str) else bytes(data)
    if not raw.strip():
        raise DecodeError("Paste a certificate or a CSR, or choose a file.")
    if len(raw) > MAX_INPUT_BYTES:
        raise DecodeError(f"That is larger than {MAX_INPUT_BYTES // 1024} KiB: not a certificate or CSR.")
    stripped = raw.strip()
    attempts = []
    if b"-----BEGIN" in stripped:
        if b"REQUEST-----" in stripped:
            attempts.append(lambda: describe_csr(x509.load_pem_x509_csr(stripped)))
        attempts.append(lambda: describe_certificate(x509.load_pem_x509_certificates(stripped)[0]))
    else:  # DER is read as it came: its last bytes may well be 0x20 or 0x0a, which strip() would cut off
        for candidate in dict.fromkeys((raw, stripped)):
            attempts.append(lambda der=candidate: describe_certificate(x509.load_der_x509_certificate(der)))
            attempts.append(lambda der=candidate: describe_csr(x509.load_der_x509_csr(der)))
    for attempt in attempts:
        try:
            return attempt()
        except Exception:  # noqa: S112  (hostile or unknown input: try the next reading)
            continue
    raise DecodeError("This is not a certificate or a certificate signing request (PEM or DER) that can be read.")
