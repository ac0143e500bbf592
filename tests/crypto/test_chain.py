"""Root -> intermediate -> end entity for every key type and profile, checked by
``openssl verify`` and pkilint."""

from __future__ import annotations

import ipaddress
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, ExtensionOID, ObjectIdentifier

from certificates.crypto import (
    PROFILES,
    InvalidRequestError,
    KeyType,
    PolicyError,
    PublicationUrls,
    build_end_entity_certificate,
    build_intermediate_ca_certificate,
    build_root_ca_certificate,
    build_subject,
    certificate_fingerprint_sha256,
    parse_san,
    signature_hash_for,
)
from tests.crypto.helpers import (
    INTER_URLS,
    ROOT_URLS,
    LintJob,
    assert_all_lint_clean,
    assert_lints_clean,
    assert_openssl_ok,
    cached_chain,
    cached_key,
    openssl,
    pkilint,
    write_pem,
)

ALL_KEY_TYPES = list(KeyType)
# BR 6.1.5 / 7.1.3 allow RSA and ECDSA only, so pkilint's CA/B serverauth lint
# reports Ed25519 as cabf.serverauth.prohibited_*_algorithm_encoding (ERROR).
# That is a property of the Baseline Requirements, not a defect we can fix:
# Ed25519 chains are linted against RFC 5280 (lint_pkix_cert) only.
CABF_KEY_TYPES = [kt for kt in KeyType if kt is not KeyType.ED25519]
# The S/MIME BR (7.1.3) allow RSA, ECDSA on P-256/P-384 and EdDSA, but not
# P-521: lint_cabf_smime_cert reports prohibited_spki_algorithm_encoding.
SMIME_KEY_TYPES = [kt for kt in KeyType if kt is not KeyType.EC_P521]

PROFILE_SANS = {
    "server": ["DNS:www.example.com", "DNS:*.api.example.com", "IP:93.184.216.34", "IP:2606:2800:220:1::1"],
    "server-client": ["DNS:host1.example.com", "IP:93.184.216.34"],
    "client": ["EMAIL:alice@example.com", "DNS:client.example.com"],
    "email": ["EMAIL:alice@example.com"],
}
PROFILE_CN = {
    "server": "www.example.com",
    "server-client": "host1.example.com",
    "client": "alice",
    "email": "alice@example.com",
}
OPENSSL_PURPOSE = {"server": "sslserver", "server-client": "sslclient", "client": "sslclient", "email": "smimesign"}
# BR 6.3.2 (ballot SC-081) caps TLS subscriber certificates at 200 days from
# 2026-03-15 and 100 days from 2027-03-15 (pkilint 0.13.3 and
# profiles.max_validity_days enforce that schedule); 90 days fits every step
# until 2029-03-15.
LEAF_DAYS = 90


def _pkix_allowed(cert: x509.Certificate) -> frozenset[str]:
    """pkilint's RFC 5280 lint knows no wildcards: RFC 5280 4.2.1.6 only cites the
    RFC 1034 preferred name syntax, and wildcards are defined by RFC 6125 6.4.3
    and BR 7.1.2.7.12 (whose lint, lint_cabf_serverauth_cert, accepts them). So
    ``pkix.invalid_domain_name_syntax`` is tolerated for wildcard SANs only."""
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    if any(name.startswith("*.") for name in sans.get_values_for_type(x509.DNSName)):
        return frozenset({"pkix.invalid_domain_name_syntax"})
    return frozenset()


#: RFC 7229 id-TEST-certPolicyOne: a policy OID meant for tests, standing in for an operator's own.
TEST_POLICY_OID = ObjectIdentifier("1.3.6.1.5.5.7.13.1")


def _leaf(key_type: KeyType, profile_name: str) -> x509.Certificate:
    """A leaf of a built-in profile that opts in to the CA/B Forum policy OID (no built-in
    asserts it by default, and the CA/B Forum lints want it)."""
    chain = cached_chain(key_type)
    profile = replace(PROFILES[profile_name], cabf_policy=True, policy_oids=(TEST_POLICY_OID,))
    return build_end_entity_certificate(
        chain.inter,
        chain.inter_key,
        cached_key(key_type, "leaf").public_key(),
        build_subject(PROFILE_CN[profile_name]),
        [parse_san(s) for s in PROFILE_SANS[profile_name]],
        profile,
        LEAF_DAYS,
        INTER_URLS,
    )


@pytest.mark.parametrize("key_type", ALL_KEY_TYPES, ids=str)
def test_chain_verifies_and_lints_for_every_profile(key_type: KeyType, tmp_path: Path) -> None:
    chain = cached_chain(key_type)
    root_pem = write_pem(tmp_path / "root.pem", chain.root)
    inter_pem = write_pem(tmp_path / "inter.pem", chain.inter)
    jobs = [
        LintJob("lint_pkix_cert", root_pem),
        LintJob("lint_pkix_cert", inter_pem),
        # RFC 5280 issuer/subject pairing: names, AKI/SKI, validity nesting, signature.
        LintJob("lint_pkix_signer_signee_cert_chain", inter_pem, (str(root_pem),)),
    ]
    if key_type in CABF_KEY_TYPES:
        jobs.append(LintJob("lint_cabf_serverauth_cert", root_pem, ("-t", "ROOT-CA")))

    for profile_name in PROFILES:
        leaf = _leaf(key_type, profile_name)
        leaf_pem = write_pem(tmp_path / f"{profile_name}.pem", leaf)
        result = openssl(
            "verify",
            "-CAfile",
            root_pem,
            "-untrusted",
            inter_pem,
            "-purpose",
            OPENSSL_PURPOSE[profile_name],
            leaf_pem,
        )
        assert_openssl_ok(result, f"{leaf_pem}: OK")
        jobs.append(LintJob("lint_pkix_cert", leaf_pem, allowed=_pkix_allowed(leaf)))
        if key_type in CABF_KEY_TYPES and profile_name in ("server", "server-client"):
            jobs.append(LintJob("lint_cabf_serverauth_cert", leaf_pem, ("-t", "DV-FINAL-CERTIFICATE")))
        if profile_name == "server":
            jobs.append(LintJob("lint_pkix_signer_signee_cert_chain", leaf_pem, (str(inter_pem),)))
        if profile_name == "email" and key_type in SMIME_KEY_TYPES:
            jobs.append(LintJob("lint_cabf_smime_cert", leaf_pem, ("-t", "MAILBOX-STRICT")))
    assert_all_lint_clean(jobs)


@pytest.mark.parametrize("key_type", CABF_KEY_TYPES, ids=str)
def test_tls_intermediate_lints_as_unconstrained_tls_ca(key_type: KeyType, tmp_path: Path) -> None:
    """BR 7.1.2.6 TLS subordinate CAs carry EKU serverAuth (+clientAuth) and certificatePolicies."""
    chain = cached_chain(key_type)
    inter = build_intermediate_ca_certificate(
        chain.root,
        chain.root_key,
        cached_key(key_type, "leaf").public_key(),
        build_subject("TLS Issuing CA", "Acme Test PKI", country="DE"),
        days=1825,
        path_length=0,
        urls=ROOT_URLS,
        extended_key_usages=[ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH],
    )
    path = write_pem(tmp_path / "inter.pem", inter)
    assert_lints_clean("lint_cabf_serverauth_cert", path, "-t", "INTERNAL-UNCONSTRAINED-TLS-CA")
    assert_lints_clean("lint_pkix_cert", path)


def test_unrestricted_intermediate_lints_as_tls_ca_except_missing_eku(tmp_path: Path) -> None:
    """The default intermediate (no EKU, so it can issue e-mail certificates) is
    not a BR TLS CA: BR 7.1.2.6 requires EKU in one. pkilint must report that
    and nothing else."""
    chain = cached_chain(KeyType.EC_P256)
    path = write_pem(tmp_path / "inter.pem", chain.inter)
    result = assert_lints_clean(
        "lint_cabf_serverauth_cert",
        path,
        "-t",
        "INTERNAL-UNCONSTRAINED-TLS-CA",
        allowed=frozenset({"cabf.serverauth.ca.extended_key_usage_extension_absent"}),
    )
    assert result.errors, result.describe()


def test_name_constrained_intermediate(tmp_path: Path) -> None:
    chain = cached_chain(KeyType.EC_P256, None)
    inter_key = cached_key(KeyType.EC_P256, "constrained")
    inter = build_intermediate_ca_certificate(
        chain.root,
        chain.root_key,
        inter_key.public_key(),
        build_subject("Constrained CA", "Acme Test PKI", country="DE"),
        days=1825,
        path_length=0,
        urls=ROOT_URLS,
        permitted=["example.com", "93.184.216.0/24"],
        excluded=["secret.example.com"],
        extended_key_usages=[ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH],
    )
    ext = inter.extensions.get_extension_for_oid(ExtensionOID.NAME_CONSTRAINTS)
    assert ext.critical
    inter_pem = write_pem(tmp_path / "inter.pem", inter)
    root_pem = write_pem(tmp_path / "root.pem", chain.root)
    # BR 7.1.2.5.2: a directoryName (the CA's C and O) in the permittedSubtrees, and
    # the IPv6 form (not permitted) excluded. RFC 5280 4.2.1.10 applies directoryName
    # subtrees to the subject DN of every certificate below, so the leaves below
    # name C=DE, O=Acme Test PKI before their CN.
    constraints = ext.value
    assert x509.DirectoryName(build_subject(None, "Acme Test PKI", country="DE")) in constraints.permitted_subtrees
    assert not [s for s in constraints.permitted_subtrees if isinstance(s, x509.RFC822Name)]  # a TLS-only CA
    assert x509.IPAddress(ipaddress.ip_network("::/0")) in constraints.excluded_subtrees
    assert_lints_clean("lint_cabf_serverauth_cert", inter_pem, "-t", "INTERNAL-CONSTRAINED-TLS-CA")
    assert_lints_clean("lint_pkix_cert", inter_pem)

    leaf_key = cached_key(KeyType.EC_P256, "leaf")
    leaf = build_end_entity_certificate(
        inter,
        inter_key,
        leaf_key.public_key(),
        build_subject("www.example.com", "Acme Test PKI", country="DE"),
        [parse_san("DNS:www.example.com"), parse_san("IP:93.184.216.34")],
        PROFILES["server"],
        LEAF_DAYS,
        INTER_URLS,
    )
    leaf_pem = write_pem(tmp_path / "leaf.pem", leaf)
    result = openssl("verify", "-CAfile", root_pem, "-untrusted", inter_pem, leaf_pem)
    assert result.returncode == 0, result.stdout + result.stderr

    for bad in ("DNS:www.example.org", "DNS:secret.example.com", "IP:10.0.0.1"):
        with pytest.raises(PolicyError) as err:
            build_end_entity_certificate(
                inter,
                inter_key,
                leaf_key.public_key(),
                build_subject(None),
                [parse_san(bad)],
                PROFILES["server"],
                LEAF_DAYS,
                INTER_URLS,
            )
        assert err.value.code == "name_constraints"


def test_second_intermediate_where_path_length_allows(tmp_path: Path) -> None:
    chain = cached_chain(KeyType.EC_P256, 1)
    assert chain.inter.extensions.get_extension_for_class(x509.BasicConstraints).value.path_length == 1
    sub_key = cached_key(KeyType.EC_P256, "sub")
    sub = build_intermediate_ca_certificate(
        chain.inter,
        chain.inter_key,
        sub_key.public_key(),
        build_subject("Sub CA", "Acme Test PKI", country="DE"),
        days=365,
        path_length=None,
        urls=INTER_URLS,
    )
    # None under an issuer with pathLen 1 becomes the effective limit, 0.
    assert sub.extensions.get_extension_for_class(x509.BasicConstraints).value.path_length == 0
    leaf = build_end_entity_certificate(
        sub,
        sub_key,
        cached_key(KeyType.EC_P256, "leaf").public_key(),
        build_subject("deep.example.com"),
        [parse_san("DNS:deep.example.com")],
        PROFILES["server"],
        30,
        INTER_URLS,
    )
    root_pem = write_pem(tmp_path / "root.pem", chain.root)
    untrusted = write_pem(tmp_path / "untrusted.pem", sub, chain.inter)
    leaf_pem = write_pem(tmp_path / "leaf.pem", leaf)
    result = openssl("verify", "-CAfile", root_pem, "-untrusted", untrusted, leaf_pem)
    assert result.returncode == 0, result.stdout + result.stderr
    assert_lints_clean("lint_pkix_cert", write_pem(tmp_path / "sub.pem", sub))

    # ... and no CA below the pathLen=0 sub CA.
    with pytest.raises(PolicyError) as err:
        build_intermediate_ca_certificate(
            sub,
            sub_key,
            cached_key(KeyType.EC_P256, "subsub").public_key(),
            build_subject("Too Deep CA", "Acme Test PKI", country="DE"),
            days=30,
            path_length=None,
            urls=INTER_URLS,
        )
    assert err.value.code == "path_length"


def test_intermediate_refused_under_path_length_zero() -> None:
    chain = cached_chain(KeyType.EC_P256, 0)
    with pytest.raises(PolicyError) as err:
        build_intermediate_ca_certificate(
            chain.inter,
            chain.inter_key,
            cached_key(KeyType.EC_P256, "sub").public_key(),
            build_subject("Sub CA", "Acme Test PKI", country="DE"),
            days=365,
            path_length=0,
            urls=INTER_URLS,
        )
    assert err.value.code == "path_length"


def test_explicit_path_length_above_issuer_limit_is_refused() -> None:
    chain = cached_chain(KeyType.EC_P256, 1)
    with pytest.raises(PolicyError) as err:
        build_intermediate_ca_certificate(
            chain.inter,
            chain.inter_key,
            cached_key(KeyType.EC_P256, "sub").public_key(),
            build_subject("Sub CA", "Acme Test PKI", country="DE"),
            days=365,
            path_length=3,
            urls=INTER_URLS,
        )
    assert err.value.code == "path_length"


def test_leaf_cannot_issue_and_wrong_issuer_key_refused() -> None:
    chain = cached_chain(KeyType.EC_P256)
    leaf = _leaf(KeyType.EC_P256, "server")
    with pytest.raises(PolicyError) as err:
        build_end_entity_certificate(
            leaf,
            cached_key(KeyType.EC_P256, "leaf"),
            cached_key(KeyType.EC_P256, "other").public_key(),
            build_subject("x.example.com"),
            [parse_san("DNS:x.example.com")],
            PROFILES["server"],
            30,
            INTER_URLS,
        )
    assert err.value.code == "issuer_not_ca"
    with pytest.raises(PolicyError) as err:
        build_end_entity_certificate(
            chain.inter,
            chain.root_key,
            cached_key(KeyType.EC_P256, "other").public_key(),
            build_subject("x.example.com"),
            [parse_san("DNS:x.example.com")],
            PROFILES["server"],
            30,
            INTER_URLS,
        )
    assert err.value.code == "issuer_key_mismatch"


def test_root_extensions() -> None:
    chain = cached_chain(KeyType.EC_P384)
    root = chain.root
    ext = root.extensions
    bc = ext.get_extension_for_class(x509.BasicConstraints)
    assert bc.critical
    assert bc.value.ca
    assert bc.value.path_length is None
    ku = ext.get_extension_for_class(x509.KeyUsage)
    assert ku.critical
    assert ku.value.key_cert_sign
    assert ku.value.crl_sign
    assert ku.value.digital_signature
    ski = ext.get_extension_for_class(x509.SubjectKeyIdentifier).value
    aki = ext.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    assert aki.key_identifier == ski.digest
    assert aki.authority_cert_issuer is None
    for cls in (x509.CRLDistributionPoints, x509.AuthorityInformationAccess, x509.ExtendedKeyUsage):
        with pytest.raises(x509.ExtensionNotFound):
            ext.get_extension_for_class(cls)
    assert root.issuer == root.subject
    assert root.signature_hash_algorithm is not None
    assert root.signature_hash_algorithm.name == "sha384"
    assert 0 < root.serial_number < 2**159


def test_root_with_path_length_and_explicit_serial() -> None:
    key = cached_key(KeyType.EC_P256, "root")
    root = build_root_ca_certificate(key, build_subject("R", "O", country="DE"), 10, serial=0x1234, path_length=2)
    assert root.serial_number == 0x1234
    assert root.extensions.get_extension_for_class(x509.BasicConstraints).value.path_length == 2


def test_end_entity_extensions_and_validity() -> None:
    chain = cached_chain(KeyType.RSA_2048)
    leaf = _leaf(KeyType.RSA_2048, "server")
    ext = leaf.extensions
    assert ext.get_extension_for_class(x509.BasicConstraints).critical
    assert not ext.get_extension_for_class(x509.BasicConstraints).value.ca
    ku = ext.get_extension_for_class(x509.KeyUsage)
    assert ku.critical
    assert ku.value.digital_signature
    assert ku.value.key_encipherment
    assert not ext.get_extension_for_class(x509.SubjectAlternativeName).critical
    assert list(ext.get_extension_for_class(x509.ExtendedKeyUsage).value) == [ExtendedKeyUsageOID.SERVER_AUTH]
    inter_ski = chain.inter.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    assert ext.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier == inter_ski
    freshest = ext.get_extension_for_class(x509.FreshestCRL).value
    assert freshest[0].full_name[0].value == INTER_URLS.delta_crl_url
    # RFC 5280 4.1.2.5: inclusive validity; LEAF_DAYS days minus one second.
    assert leaf.not_valid_after_utc - leaf.not_valid_before_utc == timedelta(days=LEAF_DAYS) - timedelta(seconds=1)
    assert leaf.signature_hash_algorithm is not None
    assert leaf.signature_hash_algorithm.name == signature_hash_for(chain.inter_key).name  # type: ignore[union-attr]
    fingerprint = certificate_fingerprint_sha256(leaf)
    assert len(fingerprint) == 64
    assert fingerprint == fingerprint.lower()


def test_key_usage_fits_key_type() -> None:
    ec_leaf = _leaf(KeyType.EC_P256, "email")
    ku = ec_leaf.extensions.get_extension_for_class(x509.KeyUsage).value
    assert ku.digital_signature
    assert ku.key_agreement
    assert not ku.key_encipherment
    ed_leaf = _leaf(KeyType.ED25519, "server")
    ku = ed_leaf.extensions.get_extension_for_class(x509.KeyUsage).value
    assert ku.digital_signature
    assert not ku.key_encipherment
    assert not ku.key_agreement


def test_empty_subject_makes_san_critical(tmp_path: Path) -> None:
    chain = cached_chain(KeyType.EC_P256)
    leaf = build_end_entity_certificate(
        chain.inter,
        chain.inter_key,
        cached_key(KeyType.EC_P256, "leaf").public_key(),
        build_subject(None),
        [parse_san("EMAIL:bob@example.com")],
        PROFILES["email"],
        30,
        INTER_URLS,
    )
    assert leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).critical
    assert_lints_clean("lint_pkix_cert", write_pem(tmp_path / "leaf.pem", leaf))


def test_leaf_validity_clamped_to_issuer() -> None:
    chain = cached_chain(KeyType.EC_P256)
    issuer_short = build_intermediate_ca_certificate(
        chain.root,
        chain.root_key,
        cached_key(KeyType.EC_P256, "short").public_key(),
        build_subject("Short CA", "Acme Test PKI", country="DE"),
        days=10,
        path_length=0,
        urls=ROOT_URLS,
    )
    leaf = build_end_entity_certificate(
        issuer_short,
        cached_key(KeyType.EC_P256, "short"),
        cached_key(KeyType.EC_P256, "leaf").public_key(),
        build_subject("a.example.com"),
        [parse_san("DNS:a.example.com")],
        PROFILES["server"],
        150,  # within the BR schedule, still longer than the 10-day issuer
        INTER_URLS,
    )
    assert leaf.not_valid_after_utc == issuer_short.not_valid_after_utc


def test_profile_max_days_enforced() -> None:
    chain = cached_chain(KeyType.EC_P256)
    with pytest.raises(PolicyError) as err:
        build_end_entity_certificate(
            chain.inter,
            chain.inter_key,
            cached_key(KeyType.EC_P256, "leaf").public_key(),
            build_subject("a.example.com"),
            [parse_san("DNS:a.example.com")],
            PROFILES["server"],
            399,
            INTER_URLS,
        )
    assert err.value.code == "validity_too_long"


def test_lint_harness_reports_errors(tmp_path: Path) -> None:
    """The pkilint wrapper is not vacuous: URLs on an internal name (``.test``)
    are a CA/B ERROR (cabf.internal_domain_name), and the wrapper must see it."""
    chain = cached_chain(KeyType.EC_P256)
    internal = PublicationUrls(
        "http://pki.example.test/crl", "http://pki.example.test/ocsp", "http://pki.example.test/ca.crt"
    )
    leaf = build_end_entity_certificate(
        chain.inter,
        chain.inter_key,
        cached_key(KeyType.EC_P256, "leaf").public_key(),
        build_subject("www.example.com"),
        [parse_san("DNS:www.example.com")],
        replace(PROFILES["server"], cabf_policy=True),
        LEAF_DAYS,
        internal,
    )
    path = write_pem(tmp_path / "internal.pem", leaf)
    result = pkilint("lint_cabf_serverauth_cert", path, "-t", "DV-FINAL-CERTIFICATE")
    assert result.error_codes() == {"cabf.internal_domain_name"}, result.describe()
    with pytest.raises(AssertionError, match="internal_domain_name"):
        assert_all_lint_clean([LintJob("lint_cabf_serverauth_cert", path, ("-t", "DV-FINAL-CERTIFICATE"))])


def test_constraints_of_every_ca_on_the_path(tmp_path: Path) -> None:
    chain = cached_chain(KeyType.EC_P256, None)
    constrained_key = cached_key(KeyType.EC_P256, "constrained")
    constrained = build_intermediate_ca_certificate(
        chain.root,
        chain.root_key,
        constrained_key.public_key(),
        build_subject("Constrained CA", "Acme Test PKI", country="DE"),
        days=1825,
        path_length=1,
        urls=ROOT_URLS,
        permitted=["example.com"],
    )
    sub_key = cached_key(KeyType.EC_P256, "sub")
    sub = build_intermediate_ca_certificate(
        constrained,
        constrained_key,
        sub_key.public_key(),
        build_subject("Sub CA", "Acme Test PKI", country="DE"),
        days=365,
        path_length=0,
        urls=INTER_URLS,
    )

    def issue(host: str) -> x509.Certificate:
        return build_end_entity_certificate(
            sub,
            sub_key,
            cached_key(KeyType.EC_P256, "leaf").public_key(),
            build_subject(host, "Acme Test PKI", country="DE"),  # inside the constrained CA's directoryName
            [parse_san(f"DNS:{host}")],
            PROFILES["server"],
            30,
            INTER_URLS,
            ca_chain=[constrained, chain.root],
        )

    leaf = issue("ok.example.com")
    result = openssl(
        "verify",
        "-CAfile",
        write_pem(tmp_path / "root.pem", chain.root),
        "-untrusted",
        write_pem(tmp_path / "cas.pem", sub, constrained),
        write_pem(tmp_path / "leaf.pem", leaf),
    )
    assert_openssl_ok(result)
    with pytest.raises(PolicyError) as err:
        issue("www.example.org")
    assert err.value.code == "name_constraints"


def test_ca_subject_must_be_own_and_non_empty() -> None:
    chain = cached_chain(KeyType.EC_P256)
    for subject in (chain.root.subject, build_subject(None)):
        with pytest.raises(InvalidRequestError) as err:
            build_intermediate_ca_certificate(
                chain.root,
                chain.root_key,
                cached_key(KeyType.EC_P256, "sub").public_key(),
                subject,
                days=30,
                path_length=0,
                urls=ROOT_URLS,
            )
        assert err.value.code == "subject_invalid"
    with pytest.raises(InvalidRequestError) as err:
        build_root_ca_certificate(cached_key(KeyType.EC_P256, "root"), build_subject(None), 30)
    assert err.value.code == "subject_invalid"


def test_publication_urls_validation() -> None:
    assert INTER_URLS.all_plain_http
    secure = PublicationUrls("https://pki.example.com/c.crl", "http://pki.example.com/o", "http://pki.example.com/c")
    assert not secure.all_plain_http
    for bad in ("", "ftp://pki.example.com/c.crl", "pki.example.com/c.crl", "http:///nohost", "http://a b/c"):
        with pytest.raises(InvalidRequestError) as err:
            PublicationUrls(bad, "http://pki.example.com/o", "http://pki.example.com/c")
        assert err.value.code == "url_invalid"


def test_end_entity_may_not_reuse_the_ca_key() -> None:
    chain = cached_chain(KeyType.EC_P256)
    with pytest.raises(InvalidRequestError) as err:
        build_end_entity_certificate(
            chain.inter,
            chain.inter_key,
            chain.inter_key.public_key(),
            build_subject("x.example.com"),
            [parse_san("DNS:x.example.com")],
            PROFILES["server"],
            30,
            INTER_URLS,
        )
    assert err.value.code == "key_reuse"


@pytest.mark.parametrize(
    ("profile", "cn", "san"),
    [("server", "other.example.com", "DNS:www.example.com"), ("email", "Alice", "EMAIL:alice@example.com")],
)
def test_common_name_must_repeat_a_san(profile: str, cn: str, san: str) -> None:
    """BR 7.1.4.3 / S/MIME BR 7.1.4.2.2 (mailbox-validated): the CN is one of the SANs."""
    chain = cached_chain(KeyType.EC_P256)
    with pytest.raises(InvalidRequestError) as err:
        build_end_entity_certificate(
            chain.inter,
            chain.inter_key,
            cached_key(KeyType.EC_P256, "leaf").public_key(),
            build_subject(cn),
            [parse_san(san)],
            PROFILES[profile],
            30,
            INTER_URLS,
        )
    assert err.value.code == "san_not_allowed"
