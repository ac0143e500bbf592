"""The one place refused requests reach the audit trail: after the answer, whatever produced it.

It sits outside authentication and RBAC, so it sees their refusals (a 429 for a flood of wrong
Bearer credentials, an rbac.json 403) as well as every view's and service's 403, 404 and 429,
and hands them to `audit.denials`, which decides what is a refusal and keeps the budget. A
refusal whose operation already recorded a failure event is left alone (one event per refusal).
The answer never depends on the audit write: if it fails, the server log says so.
"""

from __future__ import annotations

import logging

from audit.denials import DENIAL_STATUSES, denial_for, record_denial
from audit.services import failure_events_appended

logger = logging.getLogger(__name__)


class DenialAuditMiddleware:
    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request):
        failures_before = failure_events_appended()
        response = self.get_response(request)
        if response.status_code in DENIAL_STATUSES and failure_events_appended() == failures_before:
            self._record(request, response)
        return response

    @staticmethod
    def _record(request, response) -> None:
        try:
            denial = denial_for(request, response)
            if denial is not None:
                record_denial(request, denial)
        except Exception:  # the refusal stands even when the audit write fails; the log keeps why
            logger.exception("Could not record a refusal of %s %s", request.method, request.path)
