"""The shape of the house, checked by reading the source (`ast`, no import of the modules).

1. No import cycle among the modules of `certificates.services`: every import counts, at module
   level or inside a function (a deferred import hides a circle, it does not remove it).
2. The layers below the services never import them: `certificates.signers`, `certificates.crypto`
   and `certificates.vault` know nothing of the services.
3. Private-key objects live only in the signer backends (`certificates/signers/`), the pure crypto
   package (`certificates/crypto/`) and the vault (`certificates/vault/`, which seals and opens
   them). Everywhere else in the project's own packages (migrations aside) the source must not
   name a private-key type - any identifier, attribute or imported name containing
   ``PrivateKey`` (the `PrivateKey` alias, `RSAPrivateKey`, `EllipticCurvePrivateKey`,
   `Ed25519PrivateKey`, `CertificateIssuerPrivateKeyTypes`, ...) - nor import or call a function
   that makes, opens or serialises one (`KEY_FUNCTIONS`). One file is exempt by name:
   `audit/keys.py` holds the audit trail's own Ed25519 signing key (derived from the master key;
   it signs audit checkpoints, never a certificate, CRL or OCSP answer).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.helpers import PROJECT_DIR

PACKAGES = ("acme_server", "approvals", "audit", "backups", "certificates", "enrollment", "organizations",
            "pki_project", "ratelimits")
KEY_HOLDERS = ("certificates/crypto/", "certificates/signers/", "certificates/vault/")
EXEMPT_FILES = {"audit/keys.py"}
KEY_FUNCTIONS = frozenset({
    "generate_private_key", "load_pem_private_key", "load_der_private_key", "load_ssh_private_key",
    "private_key_from_der", "private_key_to_der", "load_key_and_certificates", "unlock_root_key",
    "unlocked_root_key", "load_intermediate_key", "seal_root_key", "seal_intermediate_key",
})
SERVICES = "certificates.services"


def _source_files() -> list[Path]:
    files = []
    for package in PACKAGES:
        files += [path for path in (PROJECT_DIR / package).rglob("*.py") if "migrations" not in path.parts]
    return sorted(files)


def _relative(path: Path) -> str:
    return path.relative_to(PROJECT_DIR).as_posix()


def _module_name(path: Path) -> str:
    return ".".join(path.relative_to(PROJECT_DIR).with_suffix("").parts)


def imported_modules(tree: ast.AST, module: str) -> set[str]:
    """Every module `tree` imports, anywhere in it, as absolute dotted names (`from a import b` gives
    both `a` and `a.b`: b may be a module)."""
    package = module.rsplit(".", 1)[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def service_import_graph() -> dict[str, set[str]]:
    services = {_module_name(path): path for path in (PROJECT_DIR / "certificates" / "services").glob("*.py")
                if path.name != "__init__.py"}
    return {name: {target for target in imported_modules(ast.parse(path.read_text()), name)
                   if target in services and target != name}
            for name, path in services.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of `graph` as a path that ends where it starts, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                return [*path[path.index(target):], target]
            if target not in state and (cycle := visit(target)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def private_key_uses(source: str) -> list[str]:
    """What in `source` names a private-key type or a key-making function (rule 3 of the docstring)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        names: list[str] = []
        if isinstance(node, ast.Name):
            names = [node.id]
        elif isinstance(node, ast.Attribute):
            names = [node.attr]
        elif isinstance(node, ast.ImportFrom | ast.Import):
            names = [alias.name.rsplit(".", 1)[-1] for alias in node.names]
            names += [alias.asname for alias in node.names if alias.asname]
        found += [f"line {node.lineno}: {name}" for name in names
                  if "PrivateKey" in name or name in KEY_FUNCTIONS]
    return found


def test_the_service_modules_import_no_circle():
    graph = service_import_graph()
    assert {"certificates.services.publication", "certificates.services.crls"} <= set(graph)
    assert "certificates.services.crls" in graph["certificates.services.publication"]  # edges are read
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph) or [])


def test_the_cycle_finder_finds_a_circle_and_a_deferred_import():
    deferred = "def f():\n    from certificates.services import crls\n"
    assert "certificates.services.crls" in imported_modules(ast.parse(deferred), "certificates.services.x")
    relative = "from .crls import latest_crl\n"
    assert "certificates.services.crls" in imported_modules(ast.parse(relative), "certificates.services.x")
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


@pytest.mark.parametrize("layer", ["certificates/signers", "certificates/crypto", "certificates/vault"])
def test_the_layers_below_the_services_do_not_import_them(layer):
    offenders = {}
    for path in (PROJECT_DIR / layer).rglob("*.py"):
        imports = imported_modules(ast.parse(path.read_text()), _module_name(path))
        if bad := sorted(name for name in imports if name == SERVICES or name.startswith(SERVICES + ".")):
            offenders[_relative(path)] = bad
    assert not offenders


def test_no_private_key_object_outside_the_signers_the_crypto_package_and_the_vault():
    files = _source_files()
    assert len(files) > 50  # the scan reads the project, not an empty directory
    offenders = {}
    for path in files:
        relative = _relative(path)
        if relative.startswith(KEY_HOLDERS) or relative in EXEMPT_FILES:
            continue
        if uses := private_key_uses(path.read_text()):
            offenders[relative] = uses
    assert not offenders


def test_the_private_key_scan_sees_what_it_forbids():
    assert private_key_uses("from certificates.crypto.keys import PrivateKey\n") == ["line 1: PrivateKey"]
    assert private_key_uses("def f(k: ec.EllipticCurvePrivateKey): pass\n") == ["line 1: EllipticCurvePrivateKey"]
    assert private_key_uses("key = generate_private_key('ec-p256')\n") == ["line 1: generate_private_key"]
    assert private_key_uses("from x import unlock_root_key as open_it\n") == ["line 1: unlock_root_key"]
    assert private_key_uses("signer.sign_crl(builder)  # a private key is never seen here\n") == []
    # and the key holders really are where the keys are (the exemption is not hiding an empty rule)
    assert private_key_uses((PROJECT_DIR / "certificates" / "signers" / "vault.py").read_text())
