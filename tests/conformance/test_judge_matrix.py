"""Every built-in profile x every key type, issued from a real root + intermediate, before every judge.

The judges: OpenSSL (`verify -purpose` per EKU, and the wrong purposes refused), GnuTLS
(`certtool --verify-chain`, and `--verify` with `--verify-purpose` and the host or e-mail name),
Go's crypto/x509 (`x509.Verify` per EKU with the DNS name), NSS (`vfychain -pp` against a database
trusting the root), pkilint (CA/B TLS and S/MIME lints on leaves, `lint_crl -p BR` on CRLs,
`lint_ocsp_response` on OCSP answers) and real TLS handshakes with client certificates
(`openssl s_server` / `s_client -verify_return_error`). Run them alone with
`PKI_BROWSER_INSTALL=1 .venv/bin/python -m pytest -n 2 tests/conformance`.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from certificates.crypto.keys import KeyType
from tests.conformance.corpus import BUILTIN_PROFILES, EMAILS, HOSTNAMES, Corpus, key_pem, profile_purposes
from tests.crypto.helpers import pkilint
from tests.judges import (
    EKU_OIDS,
    NSS_USAGES,
    OPENSSL_PURPOSES,
    TlsParty,
    certtool_verify,
    certtool_verify_chain,
    go_verify,
    nss_chain_is_good,
    openssl_verify,
    tls_handshake,
)

# The corpus is made through the services, so the tests use the database (each chain in a rolled-back
# savepoint of the first test that needs it); the judges themselves read only bytes.
pytestmark = pytest.mark.django_db

KEY_TYPES = list(KeyType)
PURPOSES = list(EKU_OIDS)
CASES = [pytest.param(key_type, profile, id=f"{key_type.value}-{profile}")
         for key_type in KEY_TYPES for profile in BUILTIN_PROFILES]
RSA = {KeyType.RSA_2048, KeyType.RSA_3072, KeyType.RSA_4096}
#: Pkilint codes that are a property of the test names, not of the CA.
TOLERATED = frozenset({"cabf.internal_domain_name"})


def _encrypts(key_type: KeyType, purpose: str, verifier_purpose: str | int) -> bool:
    """Whether an e-mail *recipient* (encryption) check can pass for this key type.

    Ed25519 only signs (RFC 8410), so no verifier may accept it for encryption. OpenSSL's
    `smimeencrypt` wants keyEncipherment, which only RSA keys carry: EC keys agree keys
    (keyAgreement, RFC 5753/8551), which NSS accepts for a recipient and OpenSSL does not.
    """
    if purpose != "emailProtection" or verifier_purpose not in ("smimeencrypt", 5):
        return True
    if key_type is KeyType.ED25519:
        return False
    return verifier_purpose == 5 or key_type in RSA


# --- OpenSSL ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("key_type", "profile"), CASES)
def test_openssl_verifies_each_purpose_of_the_profile_and_refuses_the_others(corpus: Corpus, key_type, profile,
                                                                             tmp_path: Path):
    chain = corpus.chain(key_type)
    leaf = chain.leaves[profile].certificate
    wanted = profile_purposes(profile)
    plain = openssl_verify(tmp_path, chain.root, leaf, chain.intermediates)
    assert plain.returncode == 0, plain.stdout + plain.stderr
    for purpose in PURPOSES:
        for openssl_purpose in OPENSSL_PURPOSES[purpose]:
            result = openssl_verify(tmp_path, chain.root, leaf, chain.intermediates, ["-purpose", openssl_purpose])
            output = result.stdout + result.stderr
            if purpose in wanted and _encrypts(key_type, purpose, openssl_purpose):
                assert result.returncode == 0, f"{openssl_purpose}: {output}"
            else:
                assert result.returncode != 0, f"{openssl_purpose} should be refused: {output}"
                assert "unsuitable certificate purpose" in output, output


# --- GnuTLS ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("key_type", "profile"), CASES)
def test_gnutls_verifies_the_chain_for_the_profiles_purposes(corpus: Corpus, certtool: str, key_type, profile,
                                                             tmp_path: Path):
    chain = corpus.chain(key_type)
    leaf = chain.leaves[profile].certificate
    whole = certtool_verify_chain(certtool, tmp_path, [leaf, chain.intermediate, chain.root])
    assert whole.returncode == 0, whole.stdout + whole.stderr
    assert "Chain verification output: Verified." in whole.stdout, whole.stdout
    for purpose in PURPOSES:
        result = certtool_verify(certtool, tmp_path, chain.root, leaf, chain.intermediates,
                                 purpose=EKU_OIDS[purpose], hostname=HOSTNAMES.get(profile),
                                 email=EMAILS.get(profile))
        if purpose in profile_purposes(profile):
            assert result.returncode == 0, f"{purpose}: {result.stdout}{result.stderr}"
            assert "Chain verification output: Verified." in result.stdout
        else:
            assert result.returncode != 0, f"{purpose} should be refused: {result.stdout}"
            assert "Not verified" in result.stdout, result.stdout


# --- Go crypto/x509 --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("key_type", "profile"), CASES)
def test_go_x509_verify_accepts_each_purpose_of_the_profile_only(corpus: Corpus, go_verifier: Path, key_type,
                                                                  profile, tmp_path: Path):
    chain = corpus.chain(key_type)
    leaf = chain.leaves[profile].certificate
    verdicts = go_verify(go_verifier, tmp_path, chain.root, leaf, chain.intermediates, PURPOSES,
                         dns_name=HOSTNAMES.get(profile))
    for purpose in PURPOSES:
        if purpose in profile_purposes(profile):
            assert verdicts[purpose]["ok"], f"{purpose}: {verdicts[purpose]}"
        else:
            assert not verdicts[purpose]["ok"], f"{purpose} should be refused: {verdicts[purpose]}"
            assert "incompatible key usage" in verdicts[purpose]["error"]
    if profile in HOSTNAMES:  # the name is checked too: another host is refused
        other = go_verify(go_verifier, tmp_path, chain.root, leaf, chain.intermediates, ["serverAuth"],
                          dns_name="elsewhere.example.net")
        assert not other["serverAuth"]["ok"]
        assert "certificate is valid for" in other["serverAuth"]["error"]


# --- NSS -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("key_type", "profile"), CASES)
def test_nss_vfychain_accepts_each_usage_of_the_profile_only(corpus: Corpus, nss, key_type, profile,
                                                              tmp_path: Path):
    chain = corpus.chain(key_type)
    leaf = chain.leaves[profile].certificate
    try:
        database = nss.trusting(chain.root)
    except AssertionError as error:
        if key_type is KeyType.ED25519 and "SEC_ERROR_ADDING_CERT" in str(error):
            pytest.skip("this NSS cannot read Ed25519 certificates (certutil: SEC_ERROR_ADDING_CERT; Debian 12 has "
                        "NSS 3.87, without Ed25519 signatures in certificates): no NSS verdict for Ed25519")
        raise
    for purpose in PURPOSES:
        for usage in NSS_USAGES[purpose]:
            result = database.verify(tmp_path, leaf, chain.intermediates, usage)
            output = result.stdout + result.stderr
            if purpose in profile_purposes(profile) and _encrypts(key_type, purpose, usage):
                assert nss_chain_is_good(result), f"usage {usage}: {output}"
            else:
                assert not nss_chain_is_good(result), f"usage {usage} should be refused: {output}"


# --- pkilint ---------------------------------------------------------------------------------------------


def _lint_errors(tool: str, path: Path, *arguments: str) -> tuple[set[str], str]:
    result = pkilint(tool, path, *arguments)
    return result.error_codes() - TOLERATED, result.describe()


@pytest.mark.parametrize(("key_type", "profile"), CASES)
def test_pkilint_finds_no_error_in_the_leaf(corpus: Corpus, key_type, profile, tmp_path: Path):
    leaf = corpus.chain(key_type).leaves[profile].certificate
    path = tmp_path / "leaf.pem"
    path.write_bytes(leaf.public_bytes(Encoding.PEM))
    errors, output = _lint_errors("lint_pkix_cert", path)
    assert not errors, output
    if "serverAuth" in profile_purposes(profile):
        if key_type is KeyType.ED25519:
            pytest.skip("BR 6.1.5/7.1.3.1 allow only RSA and ECDSA keys in TLS certificates: lint_cabf_serverauth_cert "
                        "reports Ed25519 by design (RFC 5280 lint above is clean)")
        errors, output = _lint_errors("lint_cabf_serverauth_cert", path, "-t", "DV-FINAL-CERTIFICATE")
        assert not errors, output
    if "emailProtection" in profile_purposes(profile):
        if key_type is KeyType.EC_P521:
            pytest.skip("S/MIME BR 7.1.3.1 allow ECDSA on P-256 and P-384 only: lint_cabf_smime_cert reports P-521 "
                        "by design (RFC 5280 lint above is clean)")
        errors, output = _lint_errors("lint_cabf_smime_cert", path, "-t", "MAILBOX-STRICT")
        assert not errors, output


@pytest.mark.parametrize("key_type", KEY_TYPES, ids=str)
def test_pkilint_finds_no_error_in_the_crls_and_openssl_reads_them(corpus: Corpus, key_type, tmp_path: Path):
    chain = corpus.chain(key_type)
    for name, crl, kind in (("crl", chain.crl, "CRL"), ("arl", chain.root_crl, "ARL")):
        path = tmp_path / f"{name}.der"
        path.write_bytes(crl.public_bytes(Encoding.DER))
        errors, output = _lint_errors("lint_crl", path, "-t", kind, "-p", "BR")
        assert not errors, output
    crls = tmp_path / "crls.pem"
    crls.write_bytes(chain.crl.public_bytes(Encoding.PEM) + chain.root_crl.public_bytes(Encoding.PEM))
    check = ["-crl_check_all", "-CRLfile", str(crls)]
    good = openssl_verify(tmp_path, chain.root, chain.leaves["client"].certificate, chain.intermediates, check)
    assert good.returncode == 0, good.stdout + good.stderr
    revoked = openssl_verify(tmp_path, chain.root, chain.revoked.certificate, chain.intermediates, check)
    assert revoked.returncode != 0
    assert "certificate revoked" in revoked.stdout + revoked.stderr


@pytest.mark.parametrize("key_type", KEY_TYPES, ids=str)
@pytest.mark.parametrize("answer", ["good", "revoked", "intermediate"])
def test_pkilint_finds_no_error_in_the_ocsp_answers(corpus: Corpus, key_type, answer, tmp_path: Path):
    path = tmp_path / f"{answer}.der"
    path.write_bytes(corpus.chain(key_type).ocsp[answer])
    errors, output = _lint_errors("lint_ocsp_response", path)
    assert not errors, output


# --- TLS handshakes --------------------------------------------------------------------------------------


def _party(chain, profile: str) -> TlsParty:
    leaf = chain.leaves[profile] if isinstance(profile, str) else profile
    return TlsParty(leaf.certificate, key_pem(leaf.key), chain.intermediates)


@pytest.mark.parametrize("key_type", KEY_TYPES, ids=str)
def test_tls_handshake_with_client_certificate(corpus: Corpus, key_type, tmp_path: Path):
    chain = corpus.chain(key_type)
    server_only = tls_handshake(tmp_path / "server", _party(chain, "server"), chain.root, HOSTNAMES["server"])
    assert server_only.succeeded, server_only.client_output
    mutual = tls_handshake(tmp_path / "mtls", _party(chain, "server-client"), chain.root, HOSTNAMES["server-client"],
                           client=_party(chain, "client"), client_roots=[chain.root])
    assert mutual.succeeded, mutual.client_output + mutual.server_output
    assert "robot-1" in mutual.client_output  # s_server -www shows the client certificate it verified


def test_mtls_server_refuses_a_client_certificate_of_another_ca(corpus: Corpus, tmp_path: Path):
    chain, other = corpus.chain(KeyType.EC_P256), corpus.chain(KeyType.EC_P256, "other")
    refused = tls_handshake(tmp_path, _party(chain, "server"), chain.root, HOSTNAMES["server"],
                            client=_party(other, "client"), client_roots=[chain.root])
    assert not refused.succeeded, refused.client_output
    assert "unable to get local issuer certificate" in refused.server_output, refused.server_output


def test_mtls_server_checking_crls_refuses_a_revoked_client(corpus: Corpus, tmp_path: Path):
    chain = corpus.chain(KeyType.EC_P256)
    revoked = TlsParty(chain.revoked.certificate, key_pem(chain.revoked.key), chain.intermediates)
    refused = tls_handshake(tmp_path / "revoked", _party(chain, "server"), chain.root, HOSTNAMES["server"],
                            client=revoked, client_roots=[chain.root], server_crls=[chain.crl])
    assert not refused.succeeded, refused.client_output
    assert "certificate revoked" in refused.server_output, refused.server_output
    accepted = tls_handshake(tmp_path / "good", _party(chain, "server"), chain.root, HOSTNAMES["server"],
                             client=_party(chain, "client"), client_roots=[chain.root], server_crls=[chain.crl])
    assert accepted.succeeded, accepted.client_output + accepted.server_output
