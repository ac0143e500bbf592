"""When challenges are validated: in a bounded thread pool of each worker process, never in the request.

The challenge POST moves the challenge to `processing` and, once that commits, hands its id to
`submit`. A pool thread runs the validator (`acme_server.validation.validate_challenge`, blocking
but bounded by its own timeouts) and writes the outcome to the database, where every worker reads
it. The pool has PKI_ACME_VALIDATION_WORKERS threads; a burst beyond that queues in the pool.
A process that dies with validations in flight leaves those challenges `processing`; their
authorizations expire with the order (acme_cleanup).
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import Future, ThreadPoolExecutor

from django.conf import settings
from django.db import close_old_connections, connection

logger = logging.getLogger(__name__)
_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None


def _executor() -> ThreadPoolExecutor:
    global _pool
    with _lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=max(1, settings.PKI_ACME_VALIDATION_WORKERS),
                                       thread_name_prefix="acme-validation")
        return _pool


def submit(challenge_id: int) -> Future:
    return _executor().submit(validate_now, challenge_id, own_connection=True)


def validate_now(challenge_id: int, *, own_connection: bool = False) -> None:
    """Validate one challenge and record the outcome; a validator's crash counts as a failed validation.

    `own_connection`: the caller is a pool thread, whose database connection is opened fresh and
    closed at the end (a pool thread outlives requests; nothing else would close it).
    """
    from acme_server import validation
    from acme_server.models import Challenge
    from acme_server.services.orders import key_authorization, record_validation

    if own_connection:
        close_old_connections()
    try:
        challenge = Challenge.objects.select_related("authorization__order__account").get(pk=challenge_id)
        authz = challenge.authorization
        try:
            outcome = validation.validate_challenge(
                challenge.type, authz.identifier_type, authz.identifier_value, challenge.token,
                key_authorization(challenge, authz.order.account))
            valid, problem_type, detail = outcome.valid, outcome.problem_type, outcome.detail
        except Exception:
            logger.exception("The %s validator failed on challenge %s", challenge.type, challenge_id)
            valid, problem_type, detail = (False, "urn:ietf:params:acme:error:serverInternal",
                                           "The validation could not be carried out.")
        record_validation(challenge_id, valid, problem_type, detail)
    except Exception:
        logger.exception("Recording the validation of challenge %s failed", challenge_id)
    finally:
        if own_connection:
            connection.close()
