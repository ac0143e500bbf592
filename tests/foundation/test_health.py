"""`/health` answers while alive; `/ready` checks the database and the data directory."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.mark.django_db
def test_health_answers_ok(client) -> None:
    response = client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.django_db
def test_ready_when_database_and_storage_usable(client, data_dir: Path) -> None:
    response = client.get("/ready")
    assert response.status_code == 200
    assert response.json() == {"status": "ready"}
    assert list(data_dir.iterdir()) == [], "the readiness probe must clean up after itself"


@pytest.mark.django_db
def test_ready_is_503_when_data_dir_is_not_usable(client, settings, tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the data directory should be")
    settings.PKI_DATA_DIR = blocker / "data"
    response = client.get("/ready")
    assert response.status_code == 503
    assert response.json() == {"status": "unavailable", "reasons": ["data directory not writable"]}
