"""The leak guard itself must be able to fail, or its silence proves nothing."""

from __future__ import annotations

import pytest

from certificates.vault.errors import VaultError

from .helpers import PASSPHRASE, ROOT_PASSWORD, assert_no_secret, assert_no_secret_in_text


@pytest.mark.parametrize(
    "leaky",
    [
        RuntimeError(f"unlock with {ROOT_PASSWORD} failed"),
        RuntimeError(ROOT_PASSWORD.encode().hex()),
        RuntimeError(repr(PASSPHRASE.encode())),
    ],
)
def test_guard_detects_a_leaked_secret(leaky: Exception) -> None:
    with pytest.raises(AssertionError, match="leaked"):
        assert_no_secret(leaky)


def test_guard_detects_a_secret_in_a_cause() -> None:
    try:
        try:
            raise RuntimeError(ROOT_PASSWORD)
        except RuntimeError as inner:
            raise ValueError("outer") from inner
    except ValueError as outer:
        with pytest.raises(AssertionError):
            assert_no_secret(outer)


def test_guard_detects_a_secret_in_logs() -> None:
    with pytest.raises(AssertionError):
        assert_no_secret_in_text(f"DEBUG vault: password={ROOT_PASSWORD}")


def test_every_vault_error_is_recorded_by_the_guard() -> None:
    # VaultError.__init__ is instrumented by conftest; a clean error passes it
    error = VaultError("nothing secret here")
    assert str(error) == "nothing secret here"
