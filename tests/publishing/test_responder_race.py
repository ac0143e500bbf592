"""Two workers issuing a CA's OCSP responder at once: one row wins, the loser leaves no key behind."""

from __future__ import annotations

from pathlib import Path

import pytest

from certificates.models import Certificate, CertificateKind
from certificates.services.ocsp import issue_responder_certificate


@pytest.mark.django_db
def test_the_loser_of_a_responder_race_removes_its_sealed_key(intermediate_ca, data_dir: Path):
    first = issue_responder_certificate(intermediate_ca)
    second = issue_responder_certificate(intermediate_ca)  # as a worker that lost the race would run it
    assert second.pk == first.pk
    responders = Certificate.objects.filter(issuer=intermediate_ca, kind=CertificateKind.OCSP_RESPONDER)
    assert responders.count() == 1
    sealed = {path.parent.name for path in (data_dir / "ocsp").rglob("key.pem.enc")}
    assert sealed == {Path(first.key_path).name}, "only the winner's key stays on disk"
