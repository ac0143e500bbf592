"""Publication: what a CA signs about the status of what it issued, and when.

This is the layer above `crls` and `ocsp`: a root's key is open only while its operator
gives the root password (or its token's PIN), so everything a root publishes is signed
in that moment, here, with the one signer: its full CRL and the pre-signed OCSP answers
about its children, valid until that CRL's nextUpdate. An intermediate signs without an
operator, so its CRLs follow their schedule (`crls`) and its OCSP answers are signed per
request (`ocsp`).

Entry points: `generate_crl` (one CA's full CRL: the API, the pages, the admin),
`publish_crls_for` (many CAs: `generate_crl --all` and `POST /api/v1/crls/`),
`publish_new_ca` (a CA just created) and `publish_revocations` (after a revocation).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from certificates.crypto.signing import Signer
from certificates.errors import NotFound, PermissionRefused, ServiceError
from certificates.models import CertificateAuthority, CertificateRevocationList
from certificates.services.crls import crls_due, generate_delta_crl, latest_crl, sign_full_crl
from certificates.services.ocsp import presign_root_responses
from certificates.services.permissions import Action, refusal, require
from certificates.signers import intermediate_signer, signer_for
from pki_project.actor import Actor

logger = logging.getLogger(__name__)


def _full_crl(ca: CertificateAuthority, signer: Signer, actor: Actor,
              now: datetime | None) -> CertificateRevocationList:
    """A full CRL; for a root also its pre-signed OCSP answers, valid as long as that CRL."""
    row = sign_full_crl(ca, actor=actor, signer=signer, now=now)
    if ca.is_root:
        presign_root_responses(ca, signer, until=row.next_update, now=row.this_update)
    return row


def generate_crl(
    ca: CertificateAuthority,
    *,
    actor: Actor,
    root_password: str | None = None,
    signer: Signer | None = None,
    now: datetime | None = None,
) -> CertificateRevocationList:
    """Sign and store a full CRL for `ca`. A root needs its password (or its signer already open)."""
    require(actor, Action.SIGN_CRL, ca)  # asked before any key is opened
    if signer is not None:
        return _full_crl(ca, signer, actor, now)
    with signer_for(ca, root_password=root_password, actor=actor) as opened:
        return _full_crl(ca, opened, actor, now)


def publish_crls(
    ca: CertificateAuthority,
    *,
    actor: Actor,
    root_password: str | None = None,
    signer: Signer | None = None,
    now: datetime | None = None,
) -> list[CertificateRevocationList]:
    """A fresh full CRL and, for an intermediate, a fresh delta CRL against it."""
    require(actor, Action.SIGN_CRL, ca)
    if signer is None:
        with signer_for(ca, root_password=root_password, actor=actor) as opened:
            return publish_crls(ca, actor=actor, signer=opened, now=now)
    full = _full_crl(ca, signer, actor, now)
    delta = generate_delta_crl(ca, actor=actor, signer=signer, now=now)
    return [full] if delta is None else [full, delta]


def publish_revocations(
    ca: CertificateAuthority,
    *,
    actor: Actor,
    signer: Signer | None = None,
    now: datetime | None = None,
) -> list[CertificateRevocationList]:
    """What a revocation by `ca` signs once it has committed.

    An intermediate signs only a new delta CRL against its current base (the base keeps its
    schedule); without a usable base (none yet, or past nextUpdate) it signs a full CRL and a
    delta. A root, whose signer the revocation of a CA opened anyway, signs a full CRL (and so
    re-signs its pre-signed OCSP answers): roots publish no deltas.
    """
    require(actor, Action.SIGN_CRL, ca)
    if not ca.is_root:
        signer = signer or intermediate_signer(ca)
        delta = generate_delta_crl(ca, actor=actor, signer=signer, now=now)
        if delta is not None:
            return [delta]
    return publish_crls(ca, actor=actor, signer=signer, now=now)


def _republish(ca: CertificateAuthority, actor: Actor, signer: Signer | None) -> None:
    try:
        # An intermediate: a delta CRL against its current base (RFC 5280 5.2.4); a root: a
        # full CRL, which also re-signs its pre-signed OCSP answers. Cached OCSP answers
        # need nothing: their cache key holds the revocation state (services.ocsp).
        publish_revocations(ca, actor=actor, signer=signer)
    except Exception:  # the revocation stands; `generate_crl --all` (cron) catches up
        logger.exception("Re-signing the CRL of CA %s after a revocation failed", ca.slug)


def republish_intermediates_on_commit(issuers: Iterable[CertificateAuthority], actor: Actor) -> None:
    """Once the revocation commits, each intermediate issuer signs its delta (its signer needs no secret)."""
    intermediates = [ca for ca in issuers if not ca.is_root]
    transaction.on_commit(lambda: [_republish(ca, actor, None) for ca in intermediates])


def republish_root(issuers: Iterable[CertificateAuthority], actor: Actor, root: CertificateAuthority | None,
                   root_signer: Signer | None) -> None:
    """A root among the issuers signs its CRL now, with the signer the revocation opened.

    Called after the revocation's transaction: committed, or (inside a caller's transaction)
    part of it, so the CRL never lists what a rollback undid.
    """
    for ca in issuers:
        if not ca.is_root:
            continue
        if root is not None and root_signer is not None and ca.pk == root.pk:
            _republish(ca, actor, root_signer)
        else:  # a root's CRL needs its operator: cron reports it as due
            logger.warning("The CRL of root CA %s lists a revocation only once it is re-signed", ca.slug)


def publish_new_ca(ca: CertificateAuthority, actor: Actor, *, signer: Signer, parent_signer: Signer | None) -> None:
    """A new CA's first publications, while its keys are open.

    A root: its first CRL. An intermediate: its first full CRL and delta, so its distribution
    points answer from the start; below a root, the root's CRL too, which pre-signs the OCSP
    answer about the new CA.
    """
    if ca.is_root:
        generate_crl(ca, actor=actor, signer=signer)
        return
    if ca.parent is not None and ca.parent.is_root and parent_signer is not None:
        generate_crl(ca.parent, actor=actor, signer=parent_signer)
    try:
        publish_crls(ca, actor=actor, signer=signer)
    except Exception:  # the CA stands; the first fetch or `generate_crl --all` signs it
        logger.exception("Signing the first CRLs of CA %s failed", ca.slug)



# --- Many CAs at once: `generate_crl --all` and `POST /api/v1/crls/` --------------------------------------


@dataclass(frozen=True)
class CrlPublication:
    """What happened to one CA's CRLs in `publish_crls_for`.

    `outcome` is `signed` (`crls` holds the full CRL and any delta), `current` (not due:
    `crls` holds the latest full CRL), `skipped` (a root without its password, or a CA whose
    CRL the caller may not sign: `reason` says which) or `failed` (`error`).
    """

    ca: CertificateAuthority
    outcome: str
    crls: tuple[CertificateRevocationList, ...] = ()
    reason: str = ""
    error: ServiceError | None = None


ROOT_SKIP_REASON = "A root CA's CRL needs the root password."
ROOT_DELTA_SKIP_REASON = "Root CAs publish no delta CRLs (their full CRL is re-signed whenever they are unlocked)."

#: What `publish_crls_for` signs: what is due (a delta alone where only the delta is due), full
#: CRLs (each with a fresh delta), or delta CRLs only.
PUBLISH_MODES = ("due", "full", "delta")


def publish_crls_for(
    cas: Iterable[CertificateAuthority],
    *,
    actor: Actor,
    only_due: bool = True,
    root_password: str | None = None,
    now: datetime | None = None,
    mode: str = "due",
) -> list[CrlPublication]:
    """Sign the CRLs of each CA in `cas` (with `only_due`, only those `crls_due` names), CA by CA.

    `mode` (`PUBLISH_MODES`): `due` signs a full CRL and delta where the full CRL is due (or
    `only_due` is off) and a delta alone where only the delta is; `full` signs full CRLs with
    their delta; `delta` only deltas (roots are then skipped: they publish none).
    One CA's refusal (a wrong root password, a full disk) is its `failed` outcome and does
    not stop the others; what was signed before stays signed. Roots are signed only with
    `root_password`; a CA whose CRL the actor may not sign (`permissions`: a root, for a
    manager) is `skipped` with the rule's message, and another organization's CA is left
    out altogether (it does not exist for the actor).
    """
    if mode not in PUBLISH_MODES:
        raise ValueError(f"mode must be one of {PUBLISH_MODES}")
    now = now or timezone.now()
    cas = [ca for ca in cas if not isinstance(refusal(actor, Action.SIGN_CRL, ca), NotFound)]
    due = {entry.ca.pk: entry for entry in crls_due(now, cas)} if only_due else None
    results = []
    for ca in cas:
        if due is not None and ca.pk not in due:
            latest = latest_crl(ca)
            results.append(CrlPublication(ca, "current", (latest,) if latest else (),
                                          reason="More than half of its CRL's lifetime is left."))
            continue
        entry = due[ca.pk] if due is not None else None
        reason = entry.reason if entry is not None else "forced"
        delta_only = mode == "delta" or (mode == "due" and entry is not None and entry.delta_only)
        results.append(_publish_one(ca, actor=actor, root_password=root_password, now=now, reason=reason,
                                    delta_only=delta_only))
    return results


def _publish_one(ca: CertificateAuthority, *, actor: Actor, root_password: str | None, now: datetime,
                 reason: str, delta_only: bool = False) -> CrlPublication:
    refused = refusal(actor, Action.SIGN_CRL, ca)
    if isinstance(refused, PermissionRefused):
        return CrlPublication(ca, "skipped", reason=refused.message)
    if ca.is_root and delta_only:
        return CrlPublication(ca, "skipped", reason=ROOT_DELTA_SKIP_REASON)
    if ca.is_root and not root_password:
        return CrlPublication(ca, "skipped", reason=ROOT_SKIP_REASON)
    try:
        published = None
        if delta_only:
            delta = generate_delta_crl(ca, actor=actor, now=now)
            published = [delta] if delta is not None else None  # no usable base: a full CRL and delta
        if published is None:
            published = publish_crls(ca, actor=actor, root_password=root_password if ca.is_root else None, now=now)
    except ServiceError as error:
        return CrlPublication(ca, "failed", reason=reason, error=error)
    return CrlPublication(ca, "signed", tuple(published), reason=reason)
