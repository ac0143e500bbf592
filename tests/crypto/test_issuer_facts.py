"""The issuer's facts are read once per CA certificate; every check still runs on every issuance.

`build_end_entity_certificate` keeps what it reads from the issuer certificate (its key,
AKI, name constraints, validity, subject) per certificate. These tests show
that nothing a check decides is remembered across calls: a wrong key, a non-CA issuer
and a name outside the constraints are refused each time, and two CAs never share facts.
"""

from __future__ import annotations

import pytest
from cryptography import x509

from certificates.crypto import (
    PROFILES,
    KeyType,
    PolicyError,
    build_end_entity_certificate,
    build_subject,
    parse_san,
)
from tests.crypto.helpers import INTER_URLS, cached_chain, cached_key


def _issue(issuer: x509.Certificate, issuer_key, name: str = "x.example.com") -> x509.Certificate:
    return build_end_entity_certificate(
        issuer, issuer_key, cached_key(KeyType.EC_P256, "facts-leaf").public_key(), build_subject(name),
        [parse_san(f"DNS:{name}")], PROFILES["server"], 30, INTER_URLS,
    )


def _refusal_code(issuer: x509.Certificate, issuer_key) -> str:
    with pytest.raises(PolicyError) as refused:
        _issue(issuer, issuer_key)
    return refused.value.code


def test_a_wrong_key_is_refused_after_the_ca_has_issued() -> None:
    chain = cached_chain(KeyType.EC_P256)
    _issue(chain.inter, chain.inter_key)  # the CA's facts are now kept
    assert _refusal_code(chain.inter, chain.root_key) == "issuer_key_mismatch"
    assert _refusal_code(chain.inter, cached_key(KeyType.EC_P256, "facts-other")) == "issuer_key_mismatch"
    _issue(chain.inter, chain.inter_key)  # and the right key still signs


def test_a_certificate_that_is_not_a_ca_is_refused_every_time_wrong_key_first() -> None:
    chain = cached_chain(KeyType.EC_P256)
    leaf = _issue(chain.inter, chain.inter_key)
    leaf_key = cached_key(KeyType.EC_P256, "facts-leaf")
    for _ in range(2):
        assert _refusal_code(leaf, leaf_key) == "issuer_not_ca"
        assert _refusal_code(leaf, chain.inter_key) == "issuer_key_mismatch"  # the order of before


@pytest.mark.parametrize("key_types", [(KeyType.EC_P256, KeyType.ED25519)], ids=["two-cas"])
def test_alternating_cas_each_get_their_own_issuer_name_and_key_identifier(key_types) -> None:
    for _ in range(2):
        for key_type in key_types:
            chain = cached_chain(key_type)
            leaf = _issue(chain.inter, chain.inter_key)
            assert leaf.issuer == chain.inter.subject
            ski = chain.inter.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
            aki = leaf.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
            assert aki.key_identifier == ski.digest
            assert leaf.not_valid_after_utc <= chain.inter.not_valid_after_utc
