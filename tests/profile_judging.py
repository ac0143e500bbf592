"""Judging what a profile issued: OpenSSL's `-purpose` per EKU and the CA/B Forum pkilint linters.

Shared by the API and the command-line profile tests, so both channels meet the same judges
(`tests/judges.py` runs them).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID

from certificates.models import Certificate
from certificates.selectors import ca_chain
from certificates.services.records import load_x509
from tests.judges import openssl_verify, pkilint_findings

#: RFC 7229 id-TEST-certPolicyOne: a policy OID for tests, standing in for an operator's private one.
TEST_POLICY_OID = "1.3.6.1.5.5.7.13.1"
#: pkilint reports internal test names (`*.test`, private addresses); nothing else is tolerated.
TOLERATED = ("cabf.internal_domain_name",)
OPENSSL_PURPOSES = {
    ExtendedKeyUsageOID.SERVER_AUTH: "sslserver",
    ExtendedKeyUsageOID.CLIENT_AUTH: "sslclient",
    ExtendedKeyUsageOID.EMAIL_PROTECTION: "smimesign",
}


def chain_of(row: Certificate) -> tuple[x509.Certificate, list[x509.Certificate]]:
    """(root, intermediates) above an issued certificate."""
    authorities = ca_chain(row.issuer)
    certificates = [load_x509(authority.certificate) for authority in authorities]
    roots = [certificate for authority, certificate in zip(authorities, certificates, strict=True)
             if authority.is_root]
    intermediates = [certificate for authority, certificate in zip(authorities, certificates, strict=True)
                     if not authority.is_root]
    return roots[0], intermediates


def serious_findings(findings: list[str]) -> list[str]:
    """The ERROR/FATAL finding lines, minus the tolerated codes (node lines are dropped)."""
    return [line for line in findings if ("(ERROR)" in line or "(FATAL)" in line)
            and not any(code in line for code in TOLERATED)] + [
        line for line in findings if "exited" in line]


def assert_passes_the_judges(row: Certificate, tmp_path: Path) -> x509.Certificate:
    """`openssl verify -purpose` for every EKU, and the CA/B Forum lint for its kind: clean."""
    leaf = load_x509(row)
    root, intermediates = chain_of(row)
    ekus = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    for eku in ekus:
        purpose = OPENSSL_PURPOSES[eku]
        result = openssl_verify(tmp_path, root, leaf, intermediates, ["-purpose", purpose])
        assert result.returncode == 0, f"-purpose {purpose}: {result.stdout}{result.stderr}"
    pem = leaf.public_bytes(Encoding.PEM)
    assert pkilint_findings("lint_pkix_cert", pem) == []
    if ExtendedKeyUsageOID.SERVER_AUTH in ekus:
        findings = pkilint_findings("lint_cabf_serverauth_cert", pem, "-t", "DV-FINAL-CERTIFICATE")
        assert serious_findings(findings) == [], "\n".join(findings)
    if ExtendedKeyUsageOID.EMAIL_PROTECTION in ekus:
        findings = pkilint_findings("lint_cabf_smime_cert", pem, "-t", "MAILBOX-STRICT")
        assert serious_findings(findings) == [], "\n".join(findings)
    return leaf


def openssl_text(certificate: x509.Certificate) -> str:
    result = subprocess.run(["openssl", "x509", "-noout", "-text"], input=certificate.public_bytes(Encoding.PEM),
                            capture_output=True, timeout=60, check=True)
    return result.stdout.decode()


def assert_must_staple(certificate: x509.Certificate) -> None:
    """RFC 7633: the TLS Feature extension, non-critical, with exactly status_request; OpenSSL agrees."""
    feature = certificate.extensions.get_extension_for_class(x509.TLSFeature)
    assert not feature.critical
    assert list(feature.value) == [x509.TLSFeatureType.status_request]
    text = openssl_text(certificate)
    assert "TLS Feature:" in text
    assert "status_request" in text.split("TLS Feature:", 1)[1].splitlines()[1]


def policy_oids_of(certificate: x509.Certificate) -> list[str]:
    try:
        policies = certificate.extensions.get_extension_for_class(x509.CertificatePolicies).value
    except x509.ExtensionNotFound:
        return []
    return [policy.policy_identifier.dotted_string for policy in policies]
