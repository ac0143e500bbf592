"""Pure X.509 and key code on top of ``cryptography``.

No Django, no database, no file system writes: everything the CA emits is
built here, and every deliberate failure is a :class:`CryptoError` with a
machine ``code``.
"""

from .builders import (
    ANY_POLICY,
    PublicationUrls,
    build_end_entity_certificate,
    build_intermediate_ca_certificate,
    build_root_ca_certificate,
)
from .crl import REASONS, RevokedEntry, build_crl, parse_reason, reason_name
from .csr import VettedCsr, csr_common_name, csr_key_type, csr_public_key, csr_sans, load_csr, vet_csr
from .errors import CryptoError, InvalidRequestError, PolicyError
from .fingerprints import certificate_fingerprint_sha256
from .keys import (
    KeyType,
    PrivateKey,
    PublicKey,
    generate_private_key,
    key_type_of,
    parse_key_type,
    private_key_from_der,
    private_key_to_der,
    signature_hash_for,
)
from .names import build_subject, format_san, parse_san, parse_sans, san_type
from .ocsp import (
    MalformedOCSPRequest,
    OCSPCertId,
    build_ocsp_responder_certificate,
    build_ocsp_response,
    cert_id_matches_issuer,
    ocsp_error_response,
    ocsp_request_from_get_path,
    parse_ocsp_request,
)
from .pkcs12 import build_pkcs12, generate_pkcs12_password
from .policy import (
    NameConstraintSpec,
    check_issuer_name_constraints,
    check_name_constraints,
    clamp_validity,
    validate_sans_for_profile,
)
from .profiles import PROFILES, Profile, get_profile, max_validity_days
from .serials import random_serial, serial_from_hex, serial_to_hex

__all__ = [
    "ANY_POLICY",
    "PROFILES",
    "REASONS",
    "CryptoError",
    "InvalidRequestError",
    "KeyType",
    "MalformedOCSPRequest",
    "NameConstraintSpec",
    "OCSPCertId",
    "PolicyError",
    "PrivateKey",
    "Profile",
    "PublicKey",
    "PublicationUrls",
    "RevokedEntry",
    "VettedCsr",
    "build_crl",
    "build_end_entity_certificate",
    "build_intermediate_ca_certificate",
    "build_ocsp_responder_certificate",
    "build_ocsp_response",
    "build_pkcs12",
    "build_root_ca_certificate",
    "build_subject",
    "cert_id_matches_issuer",
    "certificate_fingerprint_sha256",
    "check_issuer_name_constraints",
    "check_name_constraints",
    "clamp_validity",
    "csr_common_name",
    "csr_key_type",
    "csr_public_key",
    "csr_sans",
    "format_san",
    "generate_pkcs12_password",
    "generate_private_key",
    "get_profile",
    "key_type_of",
    "load_csr",
    "max_validity_days",
    "ocsp_error_response",
    "ocsp_request_from_get_path",
    "parse_key_type",
    "parse_ocsp_request",
    "parse_reason",
    "parse_san",
    "parse_sans",
    "private_key_from_der",
    "private_key_to_der",
    "random_serial",
    "reason_name",
    "san_type",
    "serial_from_hex",
    "serial_to_hex",
    "signature_hash_for",
    "validate_sans_for_profile",
    "vet_csr",
]
