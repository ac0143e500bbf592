"""What the CA emits, made through the service layer once per key type, for the judges to read.

Each chain is a real root and intermediate (`create_root_ca`, `create_intermediate_ca` with the
default purposes) of one key type, the four built-in profiles issued from CSRs of that key type
(the subscriber keeps the key, so the TLS handshakes can use it), a revoked spare, the
intermediate's CRL and the root's, and OCSP answers for a good, a revoked and an intermediate
certificate. It is built in a transaction (a savepoint of the test that first needs it) that is
rolled back once the bytes are copied out, with its own data directory, so no other test ever
sees it; the judges then read only the bytes.
"""

from __future__ import annotations

import functools
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from cryptography.x509 import ocsp
from django.db import transaction
from django.test import override_settings

from certificates.crypto.keys import KeyType, PrivateKey, generate_private_key
from certificates.crypto.profiles import get_profile
from certificates.crypto.purposes import purpose_names
from tests.certificates.csrs import make_csr

ROOT_PASSWORD = "judges' root password, long enough"
#: The built-in profiles, by name (read through `get_profile`: the profiles may become data).
BUILTIN_PROFILES = ("server", "client", "server-client", "email")
#: Public-looking names (pkilint's CA/B lints report internal ones as cabf.internal_domain_name).
SUBJECTS: dict[str, tuple[str, list[str]]] = {
    "server": ("www.example.com", ["DNS:www.example.com", "DNS:api.example.com", "IP:93.184.216.34"]),
    "client": ("robot-1", ["DNS:robot-1.example.com"]),
    "server-client": ("host.example.com", ["DNS:host.example.com"]),
    "email": ("alice@example.com", ["EMAIL:alice@example.com"]),
}
HOSTNAMES = {"server": "www.example.com", "server-client": "host.example.com"}
EMAILS = {"email": "alice@example.com"}


def profile_purposes(profile: str) -> list[str]:
    """The profile's EKUs by name: serverAuth, clientAuth, emailProtection."""
    return purpose_names(get_profile(profile).extended_key_usages)


def key_pem(key: PrivateKey) -> bytes:
    return key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())


@dataclass
class Leaf:
    profile: str
    certificate: x509.Certificate
    key: PrivateKey


@dataclass
class Chain:
    key_type: KeyType
    root: x509.Certificate
    intermediate: x509.Certificate
    leaves: dict[str, Leaf] = field(default_factory=dict)
    revoked: Leaf | None = None
    crl: x509.CertificateRevocationList | None = None
    root_crl: x509.CertificateRevocationList | None = None
    #: DER OCSP answers: "good" (the server leaf), "revoked" (the spare), "intermediate" (the root's).
    ocsp: dict[str, bytes] = field(default_factory=dict)

    @property
    def intermediates(self) -> list[x509.Certificate]:
        return [self.intermediate]


def _ocsp_request(certificate: x509.Certificate, issuer: x509.Certificate) -> bytes:
    builder = ocsp.OCSPRequestBuilder().add_certificate(certificate, issuer, hashes.SHA1())  # noqa: S303 (RFC 5019)
    return builder.build().public_bytes(Encoding.DER)


#: RFC 7229's OID for test certificate policies: the private policy a judged installation asserts.
TEST_POLICY_OID = "1.3.6.1.5.5.7.13.1"


def _opt_builtins_into_cabf_policies(actor) -> None:
    """The CA/B Forum lints judge CA/B-style certificates, which an installation opts in to per profile.

    The built-ins assert no CA/B Forum policy by default (a private PKI is not BR-audited); with
    `cabf_policy` and a private OID they carry what BR 7.1.2.7.9 / the S/MIME BR 7.1.6.4 want.
    """
    from certificates.models import CertificateProfile
    from certificates.services.profiles import update_profile

    wanted = {"cabf_policy": True, "policy_oids": [TEST_POLICY_OID]}
    for profile in CertificateProfile.objects.filter(name__in=BUILTIN_PROFILES):
        if not profile.cabf_policy or profile.policy_oids != wanted["policy_oids"]:
            update_profile(profile, wanted, actor=actor)


def _build(key_type: KeyType, name: str, *, with_status: bool) -> Chain:
    from certificates.models import Certificate
    from certificates.services.authorities import create_intermediate_ca, create_root_ca
    from certificates.services.issuance import IssuanceRequest, issue_certificate
    from certificates.services.ocsp import answer_ocsp_request
    from certificates.services.publication import generate_crl
    from certificates.services.records import load_x509
    from certificates.services.revocation import revoke_certificate
    from organizations.models import Organization
    from pki_project.actor import Actor

    actor = Actor.operator("judges")
    slug = f"judges-{name}-{key_type.value}"
    organization = Organization.objects.create(name=f"Judges {name} {key_type.value}", slug=slug)
    root = create_root_ca(organization=organization, common_name=f"Judges {name} Root {key_type.value}",
                          root_password=ROOT_PASSWORD, key_type=key_type, path_length=1, actor=actor)
    inter = create_intermediate_ca(parent=root, common_name=f"Judges {name} Issuing {key_type.value}",
                                   root_password=ROOT_PASSWORD, key_type=key_type, actor=actor)
    chain = Chain(key_type, load_x509(root.certificate), load_x509(inter.certificate))
    _opt_builtins_into_cabf_policies(actor)

    def issue(profile: str) -> tuple[Certificate, Leaf]:
        common_name, sans = SUBJECTS[profile]
        key = generate_private_key(key_type)
        row = issue_certificate(inter, IssuanceRequest(profile=profile, csr=make_csr(common_name, sans, key=key)),
                                actor=actor)
        return row, Leaf(profile, load_x509(row), key)

    rows = {}
    for profile in BUILTIN_PROFILES:
        rows[profile], chain.leaves[profile] = issue(profile)
    if with_status:
        spare_row, chain.revoked = issue("client")
        revoke_certificate(spare_row, reason="keyCompromise", actor=actor)
        chain.crl = x509.load_der_x509_crl(bytes(generate_crl(inter, actor=actor).der))
        chain.root_crl = x509.load_der_x509_crl(bytes(generate_crl(root, actor=actor,
                                                                   root_password=ROOT_PASSWORD).der))
        chain.ocsp = {
            "good": answer_ocsp_request(inter.slug, _ocsp_request(chain.leaves["server"].certificate,
                                                                  chain.intermediate)).der,
            "revoked": answer_ocsp_request(inter.slug, _ocsp_request(chain.revoked.certificate,
                                                                     chain.intermediate)).der,
            "intermediate": answer_ocsp_request(root.slug, _ocsp_request(chain.intermediate, chain.root)).der,
        }
    return chain


class Corpus:
    """Chains built on first use, each in a rolled-back transaction (`django_db_blocker` unblocks it)."""

    def __init__(self, django_db_blocker) -> None:
        self._blocker = django_db_blocker
        self._directory = Path(tempfile.mkdtemp(prefix="pki-judges-"))

    @functools.cache  # noqa: B019 (one corpus per test session)
    def chain(self, key_type: KeyType, name: str = "main") -> Chain:
        from certificates.services.ocsp import forget_responders
        from certificates.signers import forget_all_signing_keys

        data_dir = self._directory / f"{name}-{key_type.value}"
        data_dir.mkdir(mode=0o700)
        with self._blocker.unblock(), override_settings(PKI_DATA_DIR=data_dir), transaction.atomic():
            try:
                return _build(key_type, name, with_status=name == "main")
            finally:
                transaction.set_rollback(True)  # nothing of it stays for the other tests
                forget_all_signing_keys()
                forget_responders()
