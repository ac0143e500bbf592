"""The whole lifecycle through the client `openapi-python-client` generated from the live /api/schema/.

Run by `tests/api/test_generated_client.py` with the generator's own interpreter (httpx, attrs and
dateutil are there) and the generated package on PYTHONPATH; it imports nothing of the project.
Arguments: base URL, a global admin's API key, the organization's slug, the root password, a CSR
file, an output directory. It asserts as it goes and writes what it downloaded to the output
directory for the test to judge with real tools, and a summary as JSON on stdout.
"""

from __future__ import annotations

import json
import sys
import uuid
from pathlib import Path

from private_pki_api_client import AuthenticatedClient, Client
from private_pki_api_client.api.auth import auth_session_create, auth_session_destroy
from private_pki_api_client.api.cas import cas_create, cas_crl_create, cas_retrieve
from private_pki_api_client.api.certificates import (
    certificates_create,
    certificates_download_retrieve,
    certificates_list,
    certificates_renew_create,
    certificates_retrieve,
    certificates_revoke_create,
)
from private_pki_api_client.api.pki import pki_ca_pem, pki_crl_der
from private_pki_api_client.models import (
    CaKindEnum,
    CertificateAuthority,
    CertificateAuthorityCreateRequest,
    CertificateDetail,
    CertificatesDownloadRetrieveFormat,
    CertificatesListStatus,
    CrlRequestRequest,
    Error,
    IssueRequest,
    KeyTypeEnum,
    PaginatedCertificateList,
    RenewRequest,
    RevocationReasonEnum,
    RevokeRequest,
    RevokeResult,
    Session,
    SessionRequest,
)


def expect(response, status: int, kind: type):
    assert response.status_code == status, (response.status_code, response.content[:500])
    assert isinstance(response.parsed, kind), (type(response.parsed), response.content[:500])
    return response.parsed


def main(base: str, api_key: str, organization: str, root_password: str, csr_file: str, out: str) -> None:
    out_dir = Path(out)
    anonymous = Client(base_url=base, raise_on_unexpected_status=True)

    refused = auth_session_create.sync_detailed(client=anonymous, body=SessionRequest(api_key="pki_wrong"))
    assert expect(refused, 401, Error).error.code == "not_authenticated"
    session = expect(auth_session_create.sync_detailed(client=anonymous, body=SessionRequest(api_key=api_key)),
                     200, Session)
    assert session.role == "admin"
    assert session.organization is None
    client = AuthenticatedClient(base_url=base, token=session.token, raise_on_unexpected_status=True, timeout=120)

    root_request = CertificateAuthorityCreateRequest(kind=CaKindEnum.ROOT, name="Generated Root",
                                                     organization=organization, root_password=root_password,
                                                     key_type=KeyTypeEnum.EC_P256)
    created = cas_create.sync_detailed(client=client, body=root_request)
    root = expect(created, 201, CertificateAuthority)
    assert created.headers["Location"] == f"/api/v1/cas/{root.id}/"
    assert expect(cas_retrieve.sync_detailed(root.id, client=client), 200, CertificateAuthority).slug == root.slug
    inter = expect(cas_create.sync_detailed(client=client, body=CertificateAuthorityCreateRequest(
        kind=CaKindEnum.INTERMEDIATE, name="Generated Issuing", parent=root.slug, root_password=root_password)),
        201, CertificateAuthority)

    key = f"flow-{uuid.uuid4().hex}"
    issue = IssueRequest(ca=inter.slug, profile="server", csr=Path(csr_file).read_text())
    first = certificates_create.sync_detailed(client=client, body=issue, idempotency_key=key)
    from_csr = expect(first, 201, CertificateDetail)
    assert first.headers["Location"] == f"/api/v1/certificates/{from_csr.id}/"
    again = certificates_create.sync_detailed(client=client, body=issue, idempotency_key=key)
    assert expect(again, 201, CertificateDetail).id == from_csr.id
    assert again.headers["Idempotent-Replayed"] == "true"

    server_key = expect(certificates_create.sync_detailed(client=client, body=IssueRequest(
        ca=inter.slug, profile="client", common_name="device.generated.example",
        sans=["DNS:device.generated.example"])), 201, CertificateDetail)
    assert server_key.has_pkcs12
    assert server_key.predecessor is None

    downloads = {}
    for fmt in ("pem", "der", "fullchain", "p12"):
        response = certificates_download_retrieve.sync_detailed(
            server_key.id, client=client, format_=CertificatesDownloadRetrieveFormat(fmt))
        assert response.status_code == 200, response.content[:300]
        assert "attachment" in response.headers["Content-Disposition"]
        (out_dir / f"server-key.{fmt}").write_bytes(response.content)
        downloads[fmt] = response.headers["Content-Type"]
    (out_dir / "from-csr.pem").write_text(from_csr.certificate_pem + from_csr.chain_pem)

    renewed_answer = certificates_renew_create.sync_detailed(server_key.id, client=client, body=RenewRequest())
    renewed = expect(renewed_answer, 201, CertificateDetail)
    assert renewed.predecessor == server_key.id
    assert renewed_answer.headers["Location"] == f"/api/v1/certificates/{renewed.id}/"
    assert expect(certificates_retrieve.sync_detailed(server_key.id, client=client), 200,
                  CertificateDetail).successor == renewed.id

    revoked = expect(certificates_revoke_create.sync_detailed(
        from_csr.id, client=client, body=RevokeRequest(reason=RevocationReasonEnum.KEYCOMPROMISE)), 200, RevokeResult)
    assert revoked.revoked == [from_csr.id]
    assert revoked.certificate.revoked_at is not None
    twice = certificates_revoke_create.sync_detailed(
        from_csr.id, client=client, body=RevokeRequest(reason=RevocationReasonEnum.KEYCOMPROMISE))
    assert expect(twice, 409, Error).error.code == "already_revoked"

    crl_answer = cas_crl_create.sync_detailed(inter.id, client=client, body=CrlRequestRequest())
    assert crl_answer.status_code == 201, crl_answer.content[:300]
    assert crl_answer.headers["Location"] == f"/pki/crl/{inter.slug}.crl"
    crl = pki_crl_der.sync_detailed(inter.slug, client=anonymous)
    assert crl.status_code == 200
    (out_dir / "issuing.crl").write_bytes(crl.content)
    root_pem = pki_ca_pem.sync_detailed(root.slug, client=anonymous)
    assert root_pem.status_code == 200
    (out_dir / "root.pem").write_bytes(root_pem.content)

    listed = expect(certificates_list.sync_detailed(client=client, ca=inter.slug,
                                                    status=CertificatesListStatus.REVOKED), 200,
                    PaginatedCertificateList)
    assert [row.id for row in listed.results] == [from_csr.id]
    assert listed.count == 1
    ordered = expect(certificates_list.sync_detailed(client=client, ca=inter.slug, ordering="-not_after,id",
                                                     page_size=2), 200, PaginatedCertificateList)
    assert ordered.count == 3
    assert len(ordered.results) == 2
    assert ordered.next_
    not_afters = [row.not_after for row in ordered.results]
    assert not_afters == sorted(not_afters, reverse=True)
    searched = expect(certificates_list.sync_detailed(client=client, search="device.generated"), 200,
                      PaginatedCertificateList)
    assert {row.id for row in searched.results} == {server_key.id, renewed.id}
    bad = certificates_list.sync_detailed(client=client, ordering="no_such_field")
    assert expect(bad, 400, Error).error.code == "invalid"

    bye = auth_session_destroy.sync_detailed(client=client)
    assert bye.status_code == 200
    after = certificates_list.sync_detailed(client=client)
    assert expect(after, 401, Error).error.code == "not_authenticated"

    print(json.dumps({"root": root.slug, "issuing": inter.slug, "revoked_serial": from_csr.serial,
                      "renewed": renewed.id, "downloads": downloads}))


if __name__ == "__main__":
    main(*sys.argv[1:])
