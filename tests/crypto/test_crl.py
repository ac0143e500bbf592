"""CRLs and delta CRLs: openssl revocation checking, pkilint, and a 10,000-entry CRL."""

from __future__ import annotations

import inspect
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509

import certificates.crypto.crl as crl_module
from certificates.crypto import (
    PROFILES,
    REASONS,
    InvalidRequestError,
    KeyType,
    PolicyError,
    RevokedEntry,
    build_crl,
    build_end_entity_certificate,
    build_subject,
    parse_reason,
    parse_san,
    random_serial,
    reason_name,
)
from tests.crypto.helpers import (
    INTER_URLS,
    Chain,
    assert_lints_clean,
    assert_openssl_ok,
    cached_chain,
    cached_key,
    openssl,
    write_pem,
)


def _leaf(chain: Chain, host: str) -> x509.Certificate:
    return build_end_entity_certificate(
        chain.inter,
        chain.inter_key,
        cached_key(chain.key_type, "leaf").public_key(),
        build_subject(host),
        [parse_san(f"DNS:{host}")],
        PROFILES["server"],
        30,
        INTER_URLS,
    )


@pytest.fixture(scope="module", params=[KeyType.EC_P256, KeyType.RSA_2048, KeyType.ED25519], ids=str)
def chain(request: pytest.FixtureRequest) -> Chain:
    return cached_chain(request.param)


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def test_full_crl_revokes_with_openssl_and_lints(chain: Chain, tmp_path: Path) -> None:
    revoked_leaf = _leaf(chain, "revoked.example.com")
    good_leaf = _leaf(chain, "good.example.com")
    now = _now()
    crl = build_crl(
        chain.inter,
        chain.inter_key,
        [
            RevokedEntry(
                revoked_leaf.serial_number,
                now - timedelta(minutes=5),
                x509.ReasonFlags.key_compromise,
                now - timedelta(days=2),
            ),
            RevokedEntry(random_serial(), now - timedelta(minutes=1), x509.ReasonFlags.unspecified, None),
            RevokedEntry(random_serial(), now - timedelta(minutes=1), None, None),
        ],
        crl_number=7,
        this_update=now,
        next_update=now + timedelta(days=7),
        freshest_crl_url=INTER_URLS.delta_crl_url,
    )
    root_pem = write_pem(tmp_path / "root.pem", chain.root)
    inter_pem = write_pem(tmp_path / "inter.pem", chain.inter)
    crl_pem = write_pem(tmp_path / "crl.pem", crl)
    revoked_pem = write_pem(tmp_path / "revoked.pem", revoked_leaf)
    good_pem = write_pem(tmp_path / "good.pem", good_leaf)

    result = openssl(
        "verify", "-crl_check", "-CAfile", root_pem, "-untrusted", inter_pem, "-CRLfile", crl_pem, revoked_pem
    )
    assert result.returncode != 0
    assert "certificate revoked" in result.stdout + result.stderr, result.stdout + result.stderr
    result = openssl(
        "verify", "-crl_check", "-CAfile", root_pem, "-untrusted", inter_pem, "-CRLfile", crl_pem, good_pem
    )
    assert_openssl_ok(result, f"{good_pem}: OK")

    for profile in ("PKIX", "BR"):
        assert_lints_clean("lint_crl", crl_pem, "-t", "CRL", "-p", profile)

    # Structure: AKI, CRL number, reasonCode only where meaningful (RFC 5280 5.3.1).
    inter_ski = chain.inter.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    assert crl.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier == inter_ski
    assert crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == 7
    assert crl.is_signature_valid(chain.inter.public_key())
    entries = list(crl)
    assert len(entries) == 3
    first = crl.get_revoked_certificate_by_serial_number(revoked_leaf.serial_number)
    assert first is not None
    assert first.extensions.get_extension_for_class(x509.CRLReason).value.reason is x509.ReasonFlags.key_compromise
    assert first.extensions.get_extension_for_class(x509.InvalidityDate).value.invalidity_date_utc == now - timedelta(
        days=2
    )
    for entry in entries[1:]:
        with pytest.raises(x509.ExtensionNotFound):
            entry.extensions.get_extension_for_class(x509.CRLReason)


def test_delta_crl_with_openssl_and_lints(chain: Chain, tmp_path: Path) -> None:
    leaf = _leaf(chain, "delta.example.com")
    now = _now()
    base = build_crl(
        chain.inter,
        chain.inter_key,
        [],
        crl_number=10,
        this_update=now,
        next_update=now + timedelta(days=7),
        freshest_crl_url=INTER_URLS.delta_crl_url,
    )
    delta = build_crl(
        chain.inter,
        chain.inter_key,
        [RevokedEntry(leaf.serial_number, now, x509.ReasonFlags.superseded, None)],
        crl_number=11,
        this_update=now,
        next_update=now + timedelta(days=1),
        delta_base_crl_number=10,
    )
    indicator = delta.extensions.get_extension_for_class(x509.DeltaCRLIndicator)
    assert indicator.critical
    assert indicator.value.crl_number == 10

    root_pem = write_pem(tmp_path / "root.pem", chain.root)
    inter_pem = write_pem(tmp_path / "inter.pem", chain.inter)
    base_pem = write_pem(tmp_path / "base.pem", base)
    delta_pem = write_pem(tmp_path / "delta.pem", delta)
    leaf_pem = write_pem(tmp_path / "leaf.pem", leaf)
    common = ["verify", "-crl_check", "-CAfile", root_pem, "-untrusted", inter_pem, "-CRLfile", base_pem]

    assert_openssl_ok(openssl(*common, leaf_pem), f"{leaf_pem}: OK")  # base alone: not revoked
    result = openssl(*common, "-use_deltas", "-CRLfile", delta_pem, leaf_pem)
    assert result.returncode != 0
    assert "certificate revoked" in result.stdout + result.stderr, result.stdout + result.stderr

    for profile in ("PKIX", "BR"):
        assert_lints_clean("lint_crl", base_pem, "-t", "CRL", "-p", profile)
        assert_lints_clean("lint_crl", delta_pem, "-t", "CRL", "-p", profile)


def test_root_arl_lints(tmp_path: Path) -> None:
    """A root's CRL covers CAs only: an ARL, which BR 4.9.7 lets live up to 12 months."""
    chain = cached_chain(KeyType.EC_P384)
    now = _now()
    arl = build_crl(
        chain.root,
        chain.root_key,
        [RevokedEntry(random_serial(), now, x509.ReasonFlags.ca_compromise, None)],
        crl_number=1,
        this_update=now,
        next_update=now + timedelta(days=300),
    )
    path = write_pem(tmp_path / "arl.pem", arl)
    for profile in ("PKIX", "BR"):
        assert_lints_clean("lint_crl", path, "-t", "ARL", "-p", profile)


def test_ten_thousand_entries_in_one_builder_call() -> None:
    chain = cached_chain(KeyType.EC_P256)
    now = _now()
    entries = (
        RevokedEntry(serial, now, x509.ReasonFlags.superseded if serial % 2 else None, None)
        for serial in range(1, 10_001)
    )
    crl = build_crl(chain.inter, chain.inter_key, entries, 1, now, now + timedelta(days=7))
    assert len(crl) == 10_000
    assert crl.get_revoked_certificate_by_serial_number(9_999) is not None
    # The quadratic per-entry builder API is never used.
    assert "add_revoked_certificate(" not in inspect.getsource(crl_module)


def test_crl_input_errors() -> None:
    chain = cached_chain(KeyType.EC_P256)
    now = _now()
    with pytest.raises(InvalidRequestError, match="next_update"):
        build_crl(chain.inter, chain.inter_key, [], 1, now, now)
    with pytest.raises(InvalidRequestError, match="exceed"):
        build_crl(chain.inter, chain.inter_key, [], 5, now, now + timedelta(days=1), delta_base_crl_number=5)
    with pytest.raises(InvalidRequestError, match="duplicate"):
        build_crl(
            chain.inter, chain.inter_key, [RevokedEntry(1, now), RevokedEntry(1, now)], 1, now, now + timedelta(days=1)
        )
    with pytest.raises(InvalidRequestError) as err:
        build_crl(
            chain.inter,
            chain.inter_key,
            [RevokedEntry(1, now, x509.ReasonFlags.certificate_hold)],
            1,
            now,
            now + timedelta(days=1),
        )
    assert err.value.code == "reason_invalid"
    with pytest.raises(InvalidRequestError) as err:
        build_crl(
            chain.inter, chain.inter_key, [], 1, datetime(2026, 1, 1), now + timedelta(days=1)
        )  # naive on purpose
    assert err.value.code == "time_invalid"
    with pytest.raises(PolicyError) as err:
        build_crl(chain.inter, chain.root_key, [], 1, now, now + timedelta(days=1))
    assert err.value.code == "issuer_key_mismatch"


def test_reasons() -> None:
    assert list(REASONS) == [
        "unspecified",
        "keyCompromise",
        "cACompromise",
        "affiliationChanged",
        "superseded",
        "cessationOfOperation",
        "privilegeWithdrawn",
        "aACompromise",
    ]
    assert parse_reason("keyCompromise") is x509.ReasonFlags.key_compromise
    assert parse_reason("KEYCOMPROMISE") is x509.ReasonFlags.key_compromise
    for name in REASONS:
        assert reason_name(parse_reason(name)) == name
    assert reason_name(None) == "unspecified"
    for bad in ("certificateHold", "removeFromCRL", "", "stolen", None):
        with pytest.raises(InvalidRequestError) as err:
            parse_reason(bad)  # type: ignore[arg-type]
        assert err.value.code == "reason_invalid"
