"""Start-up refuses missing or weak secrets with one clear line naming the variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from pki_project.config import ConfigError, validate_required_secrets
from tests.helpers import VALID_SECRETS, clean_environment, run_manage


@pytest.fixture
def empty_project_env(tmp_path: Path) -> dict[str, str]:
    """Run from a directory without `.env`, with a throwaway SQLite file."""
    return {"DATABASE_URL": f"sqlite:///{tmp_path / 'pki.db'}", "PKI_DATA_DIR": str(tmp_path / "data")}


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("PKI_JWT_SECRET", "0123456789", "PKI_JWT_SECRET is too short"),
        ("PKI_JWT_SECRET", None, "PKI_JWT_SECRET is not set"),
        ("PKI_ENCRYPTION_KEY", "short-key", "PKI_ENCRYPTION_KEY is too short"),
        ("PKI_ENCRYPTION_KEY", None, "PKI_ENCRYPTION_KEY is not set"),
        ("PKI_ENCRYPTION_SALT", None, "PKI_ENCRYPTION_SALT is not set"),
        ("PKI_ENCRYPTION_SALT", "aaaaaaaaaaaaaaaaaaaa", "PKI_ENCRYPTION_SALT is too weak"),
        ("PKI_ENCRYPTION_SALT", "abc123", "PKI_ENCRYPTION_SALT is too weak"),
    ],
)
def test_manage_py_refuses_weak_or_missing_secret_with_one_line(
    variable: str, value: str | None, expected: str, empty_project_env: dict[str, str], tmp_path: Path
) -> None:
    env = clean_environment(**{variable: value}, **empty_project_env)
    # A `.env` in the project directory must not rescue a bad environment: point it away.
    env["PKI_ENV_FILE"] = str(tmp_path / "no-such.env")
    result = run_manage("check", env=env)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert expected in lines[0]
    assert "Traceback" not in result.stderr
    if value:
        assert value not in result.stderr, "the refused secret itself must never be printed"


def test_manage_py_starts_with_sound_secrets(empty_project_env: dict[str, str]) -> None:
    result = run_manage("check", env=clean_environment(**empty_project_env))
    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


def test_jwt_secret_must_differ_from_encryption_key() -> None:
    same = "x" * 40
    with pytest.raises(ConfigError, match="must differ"):
        validate_required_secrets({**VALID_SECRETS, "PKI_JWT_SECRET": same, "PKI_ENCRYPTION_KEY": same})


def test_wsgi_refuses_weak_secret(empty_project_env: dict[str, str], tmp_path: Path) -> None:
    """The server entry point stops the same way as manage.py."""
    import subprocess
    import sys

    from tests.helpers import PROJECT_DIR

    env = clean_environment(PKI_JWT_SECRET="tooshort", PKI_ENV_FILE=str(tmp_path / "no-such.env"), **empty_project_env)
    result = subprocess.run(
        [sys.executable, "-c", "import pki_project.wsgi"], env=env, cwd=PROJECT_DIR,
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "Configuration error: PKI_JWT_SECRET is too short: it must be at least 32 characters (it has 8)."
    ]


def test_debug_is_off_unless_asked(settings) -> None:
    assert settings.DEBUG is False


@pytest.mark.parametrize(("variable", "value", "expected"), [
    ("PKI_POLICY_OID", "2.5.29.32.0", "Configuration error: PKI_POLICY_OID: anyPolicy belongs in CA certificates"),
    ("PKI_MAX_REQUEST_BYTES", "abc", "Configuration error: PKI_MAX_REQUEST_BYTES must be a number of bytes"),
])
@pytest.mark.parametrize("entry", [["manage.py", "check"], ["-c", "import pki_project.wsgi"]])
def test_settings_checked_by_django_stop_with_one_line(empty_project_env: dict[str, str], tmp_path: Path, variable,
                                                       value, expected, entry) -> None:
    """A setting refused once Django loads stops manage.py and the server like a weak secret: one line, exit 2."""
    import subprocess
    import sys

    from tests.helpers import PROJECT_DIR

    env = clean_environment(PKI_ENV_FILE=str(tmp_path / "no-such.env"), **{variable: value}, **empty_project_env)
    result = subprocess.run([sys.executable, *entry], env=env, cwd=PROJECT_DIR, capture_output=True, text=True,
                            timeout=120, check=False)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(expected)


@pytest.mark.parametrize("value", ["libsofthsm2.so", "relative/lib.so", "/no/such/pkcs11-module.so"])
def test_manage_py_refuses_a_pkcs11_module_that_is_not_an_absolute_existing_file(
    value: str, empty_project_env: dict[str, str], tmp_path: Path
) -> None:
    env = clean_environment(PKI_PKCS11_MODULE=value, PKI_ENV_FILE=str(tmp_path / "no-such.env"), **empty_project_env)
    result = run_manage("check", env=env)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "PKI_PKCS11_MODULE must be the absolute path of an existing PKCS#11 library" in lines[0]


def test_the_pkcs11_settings_default_to_debians_softhsm_and_no_pin_file(tmp_path: Path) -> None:
    from pki_project.config import DEFAULT_PKCS11_MODULE, pkcs11_module, pkcs11_pin_file

    assert pkcs11_module({}) == DEFAULT_PKCS11_MODULE == "/usr/lib/softhsm/libsofthsm2.so"
    module = tmp_path / "vendor-pkcs11.so"
    module.write_bytes(b"\x7fELF")
    assert pkcs11_module({"PKI_PKCS11_MODULE": str(module)}) == str(module)
    assert pkcs11_pin_file({}) == ""
    with pytest.raises(ConfigError, match="PKI_PKCS11_PIN_FILE must be the absolute path of an existing file"):
        pkcs11_pin_file({"PKI_PKCS11_PIN_FILE": str(tmp_path / "missing.pin")})
    pin = tmp_path / "issuing.pin"
    pin.write_text("1234\n")
    assert pkcs11_pin_file({"PKI_PKCS11_PIN_FILE": str(pin)}) == str(pin)
