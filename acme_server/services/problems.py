"""Problem documents (RFC 8555 6.7, RFC 7807): every refusal of the ACME server is one of these."""

from __future__ import annotations

from dataclasses import dataclass, field

ERROR_NS = "urn:ietf:params:acme:error:"

# type -> HTTP status the server answers it with
STATUS = {
    "accountDoesNotExist": 400,
    "alreadyReplaced": 409,  # RFC 9773 5
    "alreadyRevoked": 400,
    "badCSR": 400,
    "badNonce": 400,
    "badPublicKey": 400,
    "badRevocationReason": 400,
    "badSignatureAlgorithm": 400,
    "caa": 403,
    "compound": 403,
    "connection": 400,
    "dns": 400,
    "externalAccountRequired": 403,
    "incorrectResponse": 403,
    "invalidContact": 400,
    "malformed": 400,
    "orderNotReady": 403,
    "rateLimited": 429,
    "rejectedIdentifier": 400,
    "serverInternal": 500,
    "tls": 400,
    "unauthorized": 403,
    "unsupportedContact": 400,
    "unsupportedIdentifier": 400,
    "userActionRequired": 403,
}


@dataclass
class AcmeProblem(Exception):
    """An ACME error: `kind` is the short name after urn:ietf:params:acme:error:."""

    kind: str
    detail: str
    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    subproblems: list[dict] = field(default_factory=list)
    # badSignatureAlgorithm lists what is accepted (RFC 8555 6.2)
    algorithms: list[str] | None = None

    def __post_init__(self) -> None:
        super().__init__(self.detail)
        if self.status is None:
            self.status = STATUS.get(self.kind, 400)

    @property
    def type(self) -> str:
        return ERROR_NS + self.kind

    def document(self) -> dict:
        body: dict = {"type": self.type, "detail": self.detail, "status": self.status}
        if self.subproblems:
            body["subproblems"] = self.subproblems
        if self.algorithms is not None:
            body["algorithms"] = self.algorithms
        return body


def problem_document(problem_type: str | None, detail: str, status: int = 403) -> dict:
    """A stored error (a failed challenge, an invalid order) as a problem document."""
    return {"type": problem_type or ERROR_NS + "serverInternal", "detail": detail, "status": status}
