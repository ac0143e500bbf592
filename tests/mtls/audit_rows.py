"""Audit coverage rows (tests/audit/test_coverage.py) for client-certificate bindings, done through the API."""

from __future__ import annotations

from certificates.services.issuance import IssuanceRequest, issue_certificate
from organizations.client_certificates import bind_client_certificate
from organizations.models import ClientCertificateBinding
from pki_project.actor import Actor
from tests.api.conftest import _hierarchy
from tests.certificates.csrs import make_csr
from tests.factories import UserFactory

URL = "/api/v1/client-certificate-bindings/"


def _client_certificate(organization):
    operator = Actor.operator("tests")
    _root, issuing = _hierarchy(organization, operator, "Coverage")
    return issue_certificate(issuing, IssuanceRequest(profile="client", csr=make_csr("robot", sans=[])),
                             actor=operator)


def bind(world):
    from tests.audit.test_coverage import Expected

    client = world.make_client("admin", UserFactory(role="user").membership.organization)
    certificate = _client_certificate(client.organization)
    member = UserFactory(role="user", organization=client.organization)
    world.mark()
    response = client.post(URL, {"user": member.username, "certificate": certificate.pk},
                           content_type="application/json")
    assert response.status_code == 201, response.content
    return Expected(actor_username=client.user.username, actor_role="admin", target_type="client_certificate_binding",
                    target_id=str(response.json()["id"]), organization_id=client.organization.pk,
                    details={"serial": certificate.serial, "user": member.username})


def unbind(world):
    from tests.audit.test_coverage import Expected

    client = world.make_client("admin", UserFactory(role="user").membership.organization)
    certificate = _client_certificate(client.organization)
    binding = bind_client_certificate(UserFactory(role="user", organization=client.organization), certificate,
                                      actor=Actor.operator("tests"))
    world.mark()
    assert client.delete(f"{URL}{binding.pk}/").status_code == 204
    assert not ClientCertificateBinding.objects.filter(pk=binding.pk).exists()
    return Expected(actor_username=client.user.username, actor_role="admin", target_type="client_certificate_binding",
                    target_id=str(binding.pk), organization_id=client.organization.pk,
                    details={"serial": certificate.serial})
