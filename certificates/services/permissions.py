"""Who may do what to which kind of object: one rule per action, met by every channel.

The API, the staff pages, the admin and the commands all reach the PKI through the
certificate services with an `Actor`, and each service asks `require()` before it does
anything (before it reads a password, unlocks a key or writes a row). A rule written
here therefore holds in every channel at once: an audit found the pages and the admin
letting through what the API refused (a user downloading a PKCS#12, a manager revoking
a CA or the OCSP responder, a manager signing a root's CRL), because the rule lived in
the API's views.

rbac.json still decides who may call a route at all; this module decides what may be
done to *this* object. Interfaces ask `permits()` only to decide which controls to show.

| action | object | roles |
|---|---|---|
| `issue` | a CA (the service then refuses a root: `root_cannot_issue`) | admin, manager |
| `renew` | a certificate (the service then refuses a CA's: `not_renewable`) | admin, manager |
| `revoke` | an end-entity certificate | admin, manager |
| `revoke` | a root or intermediate CA certificate, an OCSP responder certificate | admin |
| `download` | a certificate as pem, der, chain or fullchain | admin, manager, user |
| `download_pkcs12` | a certificate's PKCS#12 (it holds the private key) | admin, manager |
| `reveal_pkcs12_password` | a certificate's PKCS#12 password | admin, manager |
| `sign_crl` | an intermediate CA | admin, manager |
| `sign_crl` | a root CA (its key needs the root password) | admin |
| `create_ca` | a root in an organization, an intermediate below a CA | admin |
| `manage_notifications` | an organization's expiry-notification targets | admin |
| `approve_issuance` | an intermediate CA (a request waiting for approval; never your own) | admin, manager |

An operator (`Actor.operator`: a `manage.py` command, the server's own schedule) may do
everything. Tenancy comes first: an object of another organization than the member's
is `NotFound` (404), never a refusal that admits it exists; a global admin (an admin
without organization) sees every organization. Refusals are not audited here: the
channels answer 403 and the refusal is recorded where every 403 is.

An API key may carry scopes beyond its role (`organizations.models.ApiKey`: allowed CAs,
allowed profiles, a maximum validity). `validity_within_key_scope` holds every issuance and
renewal made with that key, or with a session it opened, to them: 403 `outside_key_scope`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum

from django.db.models import QuerySet

from certificates.errors import NotFound, PermissionRefused, ServiceError
from certificates.models import Certificate, CertificateAuthority, CertificateKind, CertificateProfile
from organizations.models import ApiKey, Organization
from organizations.principal import Principal
from organizations.roles import Role
from pki_project.actor import Actor


class Action(StrEnum):
    ISSUE = "issue"
    RENEW = "renew"
    REVOKE = "revoke"
    DOWNLOAD = "download"
    DOWNLOAD_PKCS12 = "download_pkcs12"
    REVEAL_PKCS12_PASSWORD = "reveal_pkcs12_password"  # noqa: S105  (an action's name, not a password)
    SIGN_CRL = "sign_crl"
    CREATE_CA = "create_ca"
    MANAGE_NOTIFICATIONS = "manage_notifications"
    APPROVE_ISSUANCE = "approve_issuance"


Target = Certificate | CertificateAuthority | Organization
ORGANIZATION = "organization"  # the object kind of an Organization (a root CA is created in one)


@dataclass(frozen=True)
class Rule:
    roles: frozenset[Role]
    refusal: str  # what the caller is told when their role is not among `roles`


EVERY_ROLE = frozenset(Role)
OPERATORS = frozenset({Role.ADMIN, Role.MANAGER})
ADMINS = frozenset({Role.ADMIN})
CA_KINDS = (CertificateKind.ROOT_CA, CertificateKind.INTERMEDIATE_CA)
ALL_KINDS = tuple(CertificateKind)


def _for(action: Action, kinds: tuple[str, ...], rule: Rule) -> dict[tuple[Action, str], Rule]:
    return {(action, str(kind)): rule for kind in kinds}


#: (action, object kind) -> who may. A pair that is not here is refused to every member.
RULES: dict[tuple[Action, str], Rule] = {
    **_for(Action.ISSUE, CA_KINDS, Rule(OPERATORS, "Only a manager or an admin may issue certificates.")),
    **_for(Action.RENEW, ALL_KINDS, Rule(OPERATORS, "Only a manager or an admin may renew a certificate.")),
    **_for(Action.REVOKE, (CertificateKind.END_ENTITY,),
           Rule(OPERATORS, "Only a manager or an admin may revoke a certificate.")),
    **_for(Action.REVOKE, CA_KINDS, Rule(ADMINS, "Only an admin may revoke a CA certificate.")),
    **_for(Action.REVOKE, (CertificateKind.OCSP_RESPONDER,),
           Rule(ADMINS, "Only an admin may revoke an OCSP responder certificate.")),
    **_for(Action.DOWNLOAD, ALL_KINDS, Rule(EVERY_ROLE, "You may not download this certificate.")),
    **_for(Action.DOWNLOAD_PKCS12, ALL_KINDS,
           Rule(OPERATORS, "Only a manager or an admin may download the PKCS#12 (it holds the private key).")),
    **_for(Action.REVEAL_PKCS12_PASSWORD, ALL_KINDS,
           Rule(OPERATORS, "Only a manager or an admin may reveal the PKCS#12 password.")),
    **_for(Action.SIGN_CRL, (CertificateKind.INTERMEDIATE_CA,),
           Rule(OPERATORS, "Only a manager or an admin may sign a CRL.")),
    **_for(Action.SIGN_CRL, (CertificateKind.ROOT_CA,), Rule(ADMINS, "Only an admin may sign a root CA's CRL.")),
    **_for(Action.CREATE_CA, (ORGANIZATION, *CA_KINDS), Rule(ADMINS, "Only an admin may create a CA.")),
    **_for(Action.APPROVE_ISSUANCE, (CertificateKind.INTERMEDIATE_CA,),
           Rule(OPERATORS, "Only a manager or an admin may approve or reject a certificate request.")),
    **_for(Action.MANAGE_NOTIFICATIONS, (ORGANIZATION,),
           Rule(ADMINS, "Only an admin may change the expiry notifications.")),
}
NO_RULE = "You do not have permission to do this."


def kind_of(target: Target) -> str:
    """The kind a rule is written for: a certificate's kind; a CA's certificate kind; "organization"."""
    if isinstance(target, Organization):
        return ORGANIZATION
    if isinstance(target, CertificateAuthority):
        return str(CertificateKind.ROOT_CA if target.is_root else CertificateKind.INTERMEDIATE_CA)
    return str(target.kind)


def _organization_id(target: Target) -> int | None:
    return target.pk if isinstance(target, Organization) else target.organization_id


def refusal(actor: Actor, action: Action, target: Target) -> ServiceError | None:
    """Why `actor` may not do `action` to `target` (`NotFound` for another organization), or None."""
    if actor.is_operator:
        return None
    if actor.is_acme_account:
        return _acme_refusal(actor, action, target)
    if actor.is_enrolling_machine:
        return _enrollment_refusal(actor, action, target)
    principal = actor.principal
    if principal is None:
        return PermissionRefused(NO_RULE)
    if not principal.can_see_organization(_organization_id(target)):
        return NotFound("Not found.")
    rule = RULES.get((action, kind_of(target)))
    if rule is None:
        return PermissionRefused(NO_RULE)
    if principal.role not in rule.roles:
        return PermissionRefused(rule.refusal)
    return None


#: What an ACME account may do (acme_server checks beforehand that the certificate is its own). Signing
#: the intermediate's CRL is what a revocation does next (the revocation service re-signs it on commit);
#: no ACME route signs a CRL otherwise.
ACME_RULES = frozenset({(Action.ISSUE, str(CertificateKind.INTERMEDIATE_CA)),
                        (Action.REVOKE, str(CertificateKind.END_ENTITY)),
                        (Action.SIGN_CRL, str(CertificateKind.INTERMEDIATE_CA))})


def _acme_refusal(actor: Actor, action: Action, target: Target) -> ServiceError | None:
    """An ACME account issues from its organization's intermediates and revokes end entities there, nothing else."""
    if _organization_id(target) != actor.acme_organization_id:
        return NotFound("Not found.")
    if (action, kind_of(target)) not in ACME_RULES:
        return PermissionRefused(NO_RULE)
    return None


#: What an enrolling machine may do (enrollment checks its token or certificate beforehand): issue from its
#: organization's intermediates, renew its own end-entity certificate (EST simplereenroll).
ENROLLMENT_RULES = frozenset({(Action.ISSUE, str(CertificateKind.INTERMEDIATE_CA)),
                              (Action.RENEW, str(CertificateKind.END_ENTITY))})


def _enrollment_refusal(actor: Actor, action: Action, target: Target) -> ServiceError | None:
    if _organization_id(target) != actor.enrollment_organization_id:
        return NotFound("Not found.")
    if (action, kind_of(target)) not in ENROLLMENT_RULES:
        return PermissionRefused(NO_RULE)
    return None


def require(actor: Actor, action: Action, target: Target) -> None:
    """Raise the refusal, if any: every service calls this first, so every channel meets the rule."""
    error = refusal(actor, action, target)
    if error is not None:
        raise error


def _as_actor(who: Actor | Principal | None) -> Actor:
    return who if isinstance(who, Actor) else Actor(principal=who)


def permits(who: Actor | Principal | None, action: Action, target: Target) -> bool:
    """Whether to show a control: the same rule, asked without raising (a Principal, or None, also works)."""
    return refusal(_as_actor(who), action, target) is None


def may_ever(who: Actor | Principal | None, action: Action) -> bool:
    """Whether some kind of object lets `who` do `action` (then an interface offers the action at all)."""
    actor = _as_actor(who)
    if actor.is_operator:
        return True
    if actor.principal is None:
        return False
    return any(rule_action is action and actor.principal.role in rule.roles
               for (rule_action, _kind), rule in RULES.items())


OUTSIDE_KEY_SCOPE = "outside_key_scope"


def _scoped_key(actor: Actor) -> ApiKey | None:
    """The API key behind the actor's request, when it carries a scope beyond its role."""
    principal = actor.principal
    if actor.is_operator or principal is None or principal.api_key_id is None:
        return None
    key = ApiKey.objects.prefetch_related("allowed_cas").filter(pk=principal.api_key_id).first()
    return key if key is not None and key.is_scoped else None


def within_key_scope(actor: Actor, cas: QuerySet[CertificateAuthority],
                     profiles: QuerySet[CertificateProfile]) -> tuple[QuerySet, QuerySet]:
    """The CAs and profiles an interface offers, narrowed to the actor's API key scope (the service checks anyway)."""
    key = _scoped_key(actor)
    if key is None:
        return cas, profiles
    allowed_cas = [ca.pk for ca in key.allowed_cas.all()]
    if allowed_cas:
        cas = cas.filter(pk__in=allowed_cas)
    if key.allowed_profiles:
        profiles = profiles.filter(name__in=key.allowed_profiles)
    return cas, profiles


def validity_within_key_scope(actor: Actor, ca: CertificateAuthority, profile_name: str, validity: timedelta, *,
                              asked: bool) -> timedelta:
    """The validity to issue with, once the actor's API key scope allows the CA, the profile and the length.

    A validity the client asked for (`asked`) longer than the key's maximum is refused; the
    default validity is shortened to the maximum instead. Raises `PermissionRefused`
    (`outside_key_scope`) naming what the key does not allow.
    """
    key = _scoped_key(actor)
    if key is None:
        return validity
    allowed_cas = list(key.allowed_cas.all())
    if allowed_cas and ca.pk not in {allowed.pk for allowed in allowed_cas}:
        names = ", ".join(sorted(allowed.slug for allowed in allowed_cas))
        raise PermissionRefused(f"This API key may issue only from the CA(s) {names}, not from '{ca.slug}'.",
                                code=OUTSIDE_KEY_SCOPE)
    if key.allowed_profiles and profile_name not in key.allowed_profiles:
        names = ", ".join(sorted(key.allowed_profiles))
        raise PermissionRefused(f"This API key may issue only with the profile(s) {names}, not '{profile_name}'.",
                                code=OUTSIDE_KEY_SCOPE)
    if key.max_validity_days is not None:
        limit = timedelta(days=key.max_validity_days)
        if validity > limit and asked:
            raise PermissionRefused(f"This API key may ask for at most {key.max_validity_days} days of validity.",
                                    code=OUTSIDE_KEY_SCOPE)
        return min(validity, limit)
    return validity
