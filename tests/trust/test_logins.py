"""Against a live gunicorn (2 workers) on SQLite and PostgreSQL: login limits that cannot lock a
user out, failed Bearer credentials limited and audited, refusals on the record within a budget, and 405
with `Allow` for a method a route does not take. Each attack is refused and the stored state is unchanged
but for the audit events (and attempt counters) the refusal is meant to leave.

Every test speaks from its own loopback address (`source_ip`), so one test's per-address counts never
spill into another's; the installation's limits are the defaults (10 wrong credentials per address and 5
per key prefix per minute; 10 refusals per caller and kind per minute on the record).
"""

from __future__ import annotations

import secrets
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.trust.live import LivePKI

pytestmark = pytest.mark.slow

PER_IP, PER_KEY, BUDGET = 10, 5, 10


def prefix_of(key: str) -> str:
    return key.split("_")[1]


def wrong_secret(key: str) -> str:
    return key[:-4] + ("AAAA" if not key.endswith("AAAA") else "BBBB")


def actions(events: list[dict]) -> Counter:
    return Counter((event["action"], event["outcome"]) for event in events)


def test_ten_wrong_secrets_with_a_users_prefix_then_that_user_signs_in(live: LivePKI):
    victim = live.keys["manager"]
    guess = wrong_secret(victim)
    before, head = live.fingerprint(), live.audit_head()

    refused = [live.request("POST", "/auth/session", json_body={"api_key": guess}, source_ip="127.0.0.11")
               for _ in range(10)]
    assert [response.status for response in refused] == [401] * PER_KEY + [429] * (10 - PER_KEY)
    assert {response.error_code for response in refused} == {"not_authenticated", "rate_limited"}
    assert all(int(response.header("retry-after")) >= 1 for response in refused[PER_KEY:])

    for address in ("127.0.0.11", "127.0.0.12"):  # the attacker's address and another one
        signed_in = live.request("POST", "/auth/session", json_body={"api_key": victim}, source_ip=address)
        assert signed_in.status == 200, signed_in.body
        assert signed_in.json()["role"] == "manager"
    assert live.request("GET", "/api/v1/certificates/", key="manager", source_ip="127.0.0.11").status == 200
    assert live.fingerprint().differences(before) == []

    events = live.audit_events(after_seq=head)
    failures = [event for event in events if event["action"] == "auth.login" and event["outcome"] == "failure"]
    assert len(failures) == PER_KEY
    assert {event["actor_label"] for event in failures} == {prefix_of(victim)}
    assert [event["details"]["status"] for event in events if event["action"] == "access.deny"] == [429] * 5
    assert actions(events)[("auth.login", "success")] == 2
    secret = victim.rsplit("_", 1)[1]
    assert not any(secret in str(event) for event in events)


def test_a_bearer_flood_is_limited_at_the_stated_number_and_audited_boundedly(live: LivePKI):
    """Thirty concurrent wrong Bearer credentials (API keys and forged JWTs) over both workers."""
    before, head = live.fingerprint(), live.audit_head()
    credentials = [f"pki_{secrets.token_hex(6)}_{secrets.token_urlsafe(32)}" if n % 2
                   else "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0." + secrets.token_urlsafe(32) for n in range(30)]

    def send(credential: str):
        return live.request("GET", "/api/v1/certificates/", token=credential, source_ip="127.0.0.21")

    with ThreadPoolExecutor(max_workers=6) as pool:
        responses = list(pool.map(send, credentials))
    statuses = Counter(response.status for response in responses)
    assert statuses == {401: PER_IP, 429: 30 - PER_IP}
    limited = [response for response in responses if response.status == 429]
    assert {response.error_code for response in limited} == {"rate_limited"}
    assert all(int(response.header("retry-after")) >= 1 for response in limited)

    assert live.request("GET", "/api/v1/certificates/", key="user", source_ip="127.0.0.21").status == 200
    assert live.fingerprint().differences(before) == []

    events = live.audit_events(after_seq=head)
    counted = actions(events)
    assert counted[("auth.login", "failure")] == PER_IP  # one per refused credential within the limit
    assert counted[("access.deny", "failure")] == BUDGET  # then the 429s, up to the budget ...
    assert counted[("access.deny_suppressed", "failure")] == 1  # ... and one event saying the rest are counted
    assert len(events) == PER_IP + BUDGET + 1
    assert {event["details"]["via"] for event in events if event["action"] == "auth.login"} == {"bearer"}


def test_refusals_are_on_the_record_within_a_budget(live: LivePKI):
    theirs = live.request("GET", "/api/v1/certificates/", key="other-admin").json()["results"]
    assert theirs, "the other organization holds certificates (its CAs')"
    before, head = live.fingerprint(), live.audit_head()

    assert live.request("GET", "/api/v1/audit-events/", key="user").status == 403  # rbac.json
    created = live.request("POST", "/api/v1/organizations/", key="admin", json_body={"name": "Mine Now"})
    assert created.status == 403  # a view's own rule: only a global admin creates organizations
    foreign = theirs[0]["id"]
    assert live.request("GET", f"/api/v1/certificates/{foreign}/", key="manager").status == 404  # another tenant
    for _ in range(25):
        assert live.request("GET", "/api/v1/audit-events/", key="user").status == 403
    assert live.fingerprint().differences(before) == []

    events = live.audit_events(after_seq=head)
    refusals = [(event["action"], event["actor_username"], event["target_id"]) for event in events]
    assert refusals.count(("rbac.deny", "user", "GET /api/v1/audit-events/")) == BUDGET
    assert ("access.deny", "admin", "POST /api/v1/organizations/") in refusals
    assert ("access.deny", "manager", "GET /api/v1/certificates/{id}/") in refusals
    suppressed = [event for event in events if event["action"] == "access.deny_suppressed"]
    assert len(suppressed) == 1
    assert suppressed[0]["details"]["phase"] == "started"
    assert suppressed[0]["details"]["kind"] == "rbac"
    assert len(events) == BUDGET + 3


def test_an_unsupported_method_answers_405_with_allow_and_no_event(live: LivePKI):
    leaf = live.certificates["csr-leaf"]
    before, head = live.fingerprint(), live.audit_head()

    deleted = live.request("DELETE", f"/api/v1/certificates/{leaf['id']}/", key="admin")
    assert deleted.status == 405
    assert deleted.header("allow") == "GET, HEAD, OPTIONS"
    assert deleted.error_code == "method_not_allowed"
    put = live.request("PUT", "/auth/session", json_body={"api_key": live.keys["admin"]})
    assert (put.status, put.header("allow")) == (405, "DELETE, POST")
    anonymous = live.request("PATCH", "/api/v1/cas/")
    assert (anonymous.status, anonymous.header("allow")) == (405, "GET, HEAD, OPTIONS, POST")
    assert live.request("GET", f"/api/v1/certificates/{leaf['id']}/", key="admin").status == 200

    assert live.fingerprint().differences(before) == []
    assert live.audit_events(after_seq=head) == []
