"""The attack harness itself: a refused request leaves the fingerprint as it was, a change moves it."""

from __future__ import annotations

import pytest

from tests.trust.live import LivePKI

pytestmark = pytest.mark.slow


def test_every_role_signs_in_and_reads_what_it_may(live: LivePKI):
    for role in ("global-admin", "admin", "manager", "user", "other-admin"):
        assert live.request("GET", "/api/v1/certificates/", key=role).status == 200, role
    assert live.request("GET", "/api/v1/certificates/").status == 401


def test_the_fingerprint_sees_a_revocation_and_nothing_else(live: LivePKI):
    leaf = live.certificates["csr-leaf"]
    before = live.fingerprint()
    assert live.request("GET", f"/api/v1/certificates/{leaf['id']}/", key="manager").status == 200
    assert live.fingerprint().differences(before) == []
    response = live.request("POST", f"/api/v1/certificates/{leaf['id']}/revoke/", key="manager",
                            json_body={"reason": "superseded"})
    assert response.status == 200, response.body
    changed = live.fingerprint().differences(before)
    assert "certificates_certificate" in changed
    assert "<data dir>" not in changed  # an intermediate's CRL is a row, not a file
    events = live.audit_events(after_seq=live.audit_head() - 5)
    assert any(event["action"] == "certificate.revoke" for event in events)
