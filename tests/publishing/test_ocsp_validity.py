"""BR 4.9.10: OCSP answers about subscriber certificates are valid 8 hours to 10 days (default a day),
re-signed before half their validity is gone (at most four days after thisUpdate), and the setting
is refused at start-up outside that range."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography.x509 import ocsp

from certificates.services import ocsp as ocsp_service
from certificates.services.records import load_x509
from pki_project.config import ConfigError, ocsp_response_validity
from tests.helpers import PROJECT_DIR, clean_environment
from tests.judges import pkilint_findings
from tests.publishing.conftest import ocsp_request_der

OCSP_TYPE = "application/ocsp-response"


def _post(client, slug: str, body: bytes) -> bytes:
    response = client.post(f"/pki/ocsp/{slug}/", body, content_type="application/ocsp-request")
    assert response.status_code == 200
    assert response["Content-Type"] == OCSP_TYPE
    return response.content


def test_the_default_is_a_day_and_the_range_is_8_hours_to_10_days():
    assert ocsp_response_validity({}) == 86400
    assert ocsp_response_validity({"PKI_OCSP_RESPONSE_VALIDITY": "28800"}) == 28800
    assert ocsp_response_validity({"PKI_OCSP_RESPONSE_VALIDITY": "864000"}) == 864000
    for value in ("3600", "28799", "864001", "a day", "-1", "1e5"):
        with pytest.raises(ConfigError, match="PKI_OCSP_RESPONSE_VALIDITY must be a number of seconds from 28800"):
            ocsp_response_validity({"PKI_OCSP_RESPONSE_VALIDITY": value})


@pytest.mark.parametrize("value", ["3600", "1000000"])
def test_manage_py_stops_with_one_line_outside_the_range(tmp_path: Path, value: str):
    env = clean_environment(PKI_OCSP_RESPONSE_VALIDITY=value, PKI_ENV_FILE=str(tmp_path / "none.env"),
                            DATABASE_URL=f"sqlite:///{tmp_path / 'pki.db'}", PKI_DATA_DIR=str(tmp_path / "data"),
                            PKI_UPLOAD_DIR=str(tmp_path / "uploads"))
    result = subprocess.run([sys.executable, "manage.py", "check"], cwd=PROJECT_DIR, env=env, capture_output=True,
                            text=True, timeout=120, check=False)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "Configuration error: PKI_OCSP_RESPONSE_VALIDITY must be a number of seconds from 28800 (8 hours) to 864000 "
        f"(10 days), BR 4.9.10 (it is '{value}')."
    ]


@pytest.mark.django_db
def test_answers_are_valid_a_day_by_default_and_pass_pkilint(client, intermediate_ca, leaf, settings):
    assert settings.PKI_OCSP_RESPONSE_VALIDITY == 86400
    der = _post(client, intermediate_ca.slug, ocsp_request_der(load_x509(leaf), load_x509(intermediate_ca.certificate)))
    answer = ocsp.load_der_ocsp_response(der)
    assert answer.response_status is ocsp.OCSPResponseStatus.SUCCESSFUL
    assert answer.next_update_utc - answer.this_update_utc == timedelta(hours=24)
    assert pkilint_findings("lint_ocsp_response", der) == []


@pytest.mark.django_db
@pytest.mark.parametrize(("validity", "refresh"), [(8 * 3600, timedelta(hours=4)), (86400, timedelta(hours=12)),
                                                   (10 * 86400, timedelta(days=4))])
def test_a_cached_answer_is_re_signed_before_half_its_validity_and_within_four_days(
        intermediate_ca, leaf, settings, validity, refresh):
    settings.PKI_OCSP_RESPONSE_VALIDITY = validity
    assert ocsp_service.refresh_after() == refresh
    request = ocsp.load_der_ocsp_request(ocsp_request_der(load_x509(leaf), load_x509(intermediate_ca.certificate)))
    first = ocsp_service._answer(intermediate_ca.slug, request)
    assert first.next_update - first.this_update == timedelta(seconds=validity)
    signed = ocsp_service.signature_count()
    still = ocsp_service._answer(intermediate_ca.slug, request, now=first.this_update + refresh - timedelta(seconds=1))
    assert still.from_cache
    assert still.der == first.der
    assert ocsp_service.signature_count() == signed
    renewed = ocsp_service._answer(intermediate_ca.slug, request, now=first.this_update + refresh)
    assert not renewed.from_cache
    assert renewed.this_update == first.this_update + refresh
    assert ocsp_service.signature_count() == signed + 1
    # What BR 4.9.10 asks of the refresh point, for this validity:
    if validity < 16 * 3600:
        assert refresh < timedelta(seconds=validity) / 2 + timedelta(seconds=1)
    else:
        assert timedelta(seconds=validity) - refresh >= timedelta(hours=8)
        assert refresh <= timedelta(days=4)
