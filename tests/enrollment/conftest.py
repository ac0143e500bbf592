"""Fixtures for the enrollment tests: a CA hierarchy here and in another organization, tokens, CSRs."""

from __future__ import annotations

import pytest

from certificates.models import CertificateAuthority
from enrollment.services.tokens import CreatedToken, create_token
from pki_project.actor import Actor
from tests.api.conftest import hierarchy, intermediate_ca, operator, other_hierarchy, root_ca  # noqa: F401

FLEET = "DNS:*.fleet.example.com"


@pytest.fixture
def make_token(intermediate_ca: CertificateAuthority):  # noqa: F811  (the fixture imported above)
    """`make_token(**overrides)`: a fresh one-time token of the main organization's intermediate CA."""

    def make(**overrides) -> CreatedToken:
        values = {"ca": intermediate_ca, "profile": "server", "san_patterns": [FLEET], "expires_in": 3600}
        values.update(overrides)
        ca = values.pop("ca")
        return create_token(ca.organization, ca=ca, actor=Actor.operator("tests"), **values)

    return make
