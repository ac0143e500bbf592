"""`scripts/loadtest.py --managed`, briefly: the whole set-up works and mixed traffic ends with zero errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import PROJECT_DIR, clean_environment
from tests.reliability.installations import POSTGRES_URL, REDIS_URL, postgres_answers, redis_answers


@pytest.mark.slow
def test_a_short_managed_load_test_ends_with_zero_errors(tmp_path: Path) -> None:
    if not (postgres_answers() and redis_answers()):
        pytest.skip(f"the load test needs PostgreSQL ({POSTGRES_URL}) and Redis ({REDIS_URL}): skipped")
    output = tmp_path / "results.json"
    result = subprocess.run(
        [sys.executable, "scripts/loadtest.py", "--managed", "--duration", "8", "--max-requests", "120",
         "--workers", "2", "--concurrency", "4", "--json-out", str(output)],
        cwd=PROJECT_DIR, env=clean_environment(PKI_TEST_POSTGRES_URL=POSTGRES_URL, PKI_TEST_REDIS_URL=REDIS_URL),
        capture_output=True, text=True, timeout=600, check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(output.read_text())
    assert report["total"]["errors"] == 0
    assert report["total"]["requests"] > 0
    assert set(report["operations"]) <= {"issue", "list", "detail", "download", "ocsp", "crl"}
    assert report["consistency_exit_status"] == 0
    assert "p99_ms" in report["operations"]["ocsp"]
    assert "TOTAL" in result.stdout
