"""The idempotent demo installation that `make run` bootstraps.

Each step creates what is missing and reports what already existed, so running it
again changes nothing.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable

from certificates.crypto.purposes import CA_PURPOSES
from certificates.models import CertificateAuthority
from certificates.services.authorities import ca_purposes, create_intermediate_ca, create_root_ca
from certificates.services.publication import generate_crl
from organizations.models import ApiKey, Organization
from organizations.services import create_api_key, create_organization, ensure_member
from pki_project.actor import Actor

DEMO_ORGANIZATION_SLUG = "demo"
DEMO_ORGANIZATION_NAME = "Demo Organization"
DEMO_ADMIN_USERNAME = "demo-admin"
DEMO_ROOT_SLUG = "demo-root-ca"
DEMO_INTERMEDIATE_SLUG = "demo-issuing-ca"
# A sentence about the password, not one.
ROOT_PASSWORD_HEADING = ("The demo root CA password, shown only now and stored nowhere: keep it in a "  # noqa: S105
                         "password manager (needed to create intermediates, revoke a CA or sign the root's CRL):")


def ensure_demo_organization(say: Callable[[str], None]) -> Organization:
    organization = Organization.objects.filter(slug=DEMO_ORGANIZATION_SLUG).first()
    if organization:
        say(f"Organization '{DEMO_ORGANIZATION_SLUG}' already exists.")
        return organization
    organization = create_organization(DEMO_ORGANIZATION_NAME, DEMO_ORGANIZATION_SLUG)
    say(f"Created organization '{DEMO_ORGANIZATION_SLUG}'.")
    return organization


def ensure_demo_admin(say: Callable[[str], None]) -> str | None:
    """The global admin `demo-admin` (no organization: sees and manages every one).

    Its first API key is printed once, when created; a re-run only says that a key
    exists. Returns the new key, or None when one already existed.
    """
    user, created = ensure_member(DEMO_ADMIN_USERNAME, "admin", None, actor=Actor.operator("bootstrap_demo"))
    if not created and ApiKey.objects.filter(user=user, revoked_at__isnull=True).exists():
        say(f"Admin '{DEMO_ADMIN_USERNAME}' already has an API key (shown only when it was created). "
            f"Make another with: manage.py create_api_key --user {DEMO_ADMIN_USERNAME} --role admin")
        return None
    created_key = create_api_key(user, label="demo bootstrap")
    say(f"Created global admin '{DEMO_ADMIN_USERNAME}'. Its API key, shown only now; sign in with it at /auth/login:")
    say(f"    {created_key.key}")
    return created_key.key


def ensure_demo_cas(organization: Organization, say: Callable[[str], None]) -> None:
    """A root (EC P-384) and an issuing intermediate (EC P-256) with their first CRLs.

    The intermediate vouches for every purpose (serverAuth, clientAuth, emailProtection), so it
    issues all four built-in profiles. The root password is random, printed once and never
    stored: whoever runs the demo keeps it to create more intermediates or revoke a CA.
    """
    if CertificateAuthority.objects.filter(slug=DEMO_ROOT_SLUG).exists():
        say(f"Root CA '{DEMO_ROOT_SLUG}' already exists (its password was shown only when it was created).")
        _say_if_missing_purposes(say)
        return
    actor = Actor.operator("bootstrap_demo")
    root_password = secrets.token_urlsafe(18)
    root = create_root_ca(organization=organization, common_name="Demo Root CA", root_password=root_password,
                          key_type="ec-p384", path_length=1, slug=DEMO_ROOT_SLUG, actor=actor)
    intermediate = create_intermediate_ca(parent=root, common_name="Demo Issuing CA", root_password=root_password,
                                          key_type="ec-p256", path_length=0, slug=DEMO_INTERMEDIATE_SLUG,
                                          purposes=list(CA_PURPOSES), actor=actor)
    # The root's CRL was signed by create_root_ca/create_intermediate_ca while its key was open.
    generate_crl(intermediate, actor=actor)
    say(f"Created root CA '{root.slug}' and intermediate CA '{intermediate.slug}'.")
    say(ROOT_PASSWORD_HEADING)
    say(f"    {root_password}")


def _say_if_missing_purposes(say: Callable[[str], None]) -> None:
    """A demo made before CAs had purposes has a TLS-only intermediate: say how to get one for e-mail too."""
    intermediate = CertificateAuthority.objects.select_related("certificate").filter(
        slug=DEMO_INTERMEDIATE_SLUG).first()
    if intermediate is None:
        return
    missing = [name for name in CA_PURPOSES if name not in ca_purposes(intermediate)]
    if missing:
        say(f"Intermediate CA '{DEMO_INTERMEDIATE_SLUG}' does not vouch for {', '.join(missing)} (it was made before "
            f"CAs had purposes), so it cannot issue every profile. Create one that does with: manage.py "
            f"create_intermediate_ca --root {DEMO_ROOT_SLUG} --name 'Demo Issuing CA 2' --purposes "
            f"{','.join(CA_PURPOSES)}")


def bootstrap_demo(say: Callable[[str], None]) -> None:
    organization = ensure_demo_organization(say)
    ensure_demo_admin(say)
    ensure_demo_cas(organization, say)
