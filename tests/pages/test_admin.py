"""The admin as the control room: CA tree and creation forms, certificate list/detail/actions, CRLs."""

from __future__ import annotations

import re

import pytest

from audit.models import AuditEvent
from certificates.models import Certificate, CertificateAuthority, CertificateRevocationList
from tests.pages.conftest import ROOT_PASSWORD, issue_server_certificate

pytestmark = pytest.mark.django_db

CERTS = "/admin/certificates/certificate/"
CAS = "/admin/certificates/certificateauthority/"
CRLS = "/admin/certificates/certificaterevocationlist/"


def _names(response) -> set[str]:
    return {row.common_name for row in response.context["cl"].result_list}


# --- Certificates: list, filters, search ----------------------------------------------------------


def test_certificate_list_filters(clients, hierarchy, leaf, django_capture_on_commit_callbacks):
    spare = issue_server_certificate(hierarchy.intermediate, "spare.example.com")
    client = clients["manager"]
    with django_capture_on_commit_callbacks(execute=True):
        client.post(f"/certificates/{spare.pk}/revoke", {"reason": "superseded"})
    assert _names(client.get(CERTS, {"status": "revoked"})) == {"spare.example.com"}
    assert "www.example.com" in _names(client.get(CERTS, {"status": "valid"}))
    assert _names(client.get(CERTS, {"status": "expired"})) == set()
    assert _names(client.get(CERTS, {"expiry": "30"})) == set()
    assert _names(client.get(CERTS, {"issuer__id__exact": hierarchy.intermediate.pk})) == {
        "www.example.com", "spare.example.com"}
    page = client.get(CERTS).content.decode()
    for heading in ("By status", "By expiry", "By issuer"):  # organization: shown once there are two
        assert heading in page


def test_certificate_list_hides_other_organizations(clients, leaf, other_leaf):
    response = clients["manager"].get(CERTS)
    assert "www.example.com" in _names(response)
    assert "www.other.example" not in _names(response)
    assert "Other Root CA" not in response.content.decode()  # not even in the issuer filter
    assert "www.other.example" in _names(clients["global_admin"].get(CERTS))


@pytest.mark.parametrize("term", ["www.example", "DNS:www.example.com", "serial", "serial-colons", "fingerprint"])
def test_certificate_search(clients, hierarchy, leaf, term):
    issue_server_certificate(hierarchy.intermediate, "unrelated.example.org")
    if term == "serial":
        term = leaf.serial
    elif term == "serial-colons":
        term = ":".join(leaf.serial[i:i + 2] for i in range(0, len(leaf.serial), 2)).upper()
    elif term == "fingerprint":
        term = leaf.fingerprint_sha256.upper()
    assert _names(clients["user"].get(CERTS, {"q": term})) == {"www.example.com"}


# --- Certificates: detail ---------------------------------------------------------------------


def test_certificate_detail_is_decoded_and_read_only(clients, hierarchy, leaf):
    response = clients["manager"].get(f"{CERTS}{leaf.pk}/change/")
    page = response.content.decode()
    assert response.status_code == 200
    assert "CN=www.example.com" in page
    assert "DNS:www.example.com" in page
    assert "TLS server: a web or API server may present it" in page
    assert "SHA-256" in page
    assert "SHA-1" in page
    assert hierarchy.intermediate.name in page
    assert hierarchy.root.name in page
    assert "not revoked" in page
    assert 'name="_save"' not in page
    assert "deletelink" not in page


def test_nothing_edits_or_deletes_certificates_cas_or_crls(clients, leaf, hierarchy):
    client = clients["global_admin"]  # a superuser: Django would allow everything by default
    for url in (f"{CERTS}{leaf.pk}/delete/", f"{CAS}{hierarchy.root.pk}/delete/"):
        assert client.post(url, {"post": "yes"}).status_code == 403
    crl = CertificateRevocationList.objects.filter(ca=hierarchy.root).first()
    assert client.post(f"{CRLS}{crl.pk}/delete/", {"post": "yes"}).status_code == 403
    response = client.post(f"{CERTS}{leaf.pk}/change/", {"common_name": "evil.example.com"})
    assert response.status_code == 403
    assert client.get(f"{CERTS}add/").status_code == 403
    assert Certificate.objects.filter(pk=leaf.pk, common_name="www.example.com").exists()
    assert CertificateAuthority.objects.count() == 2
    changelist = client.get(CERTS).content.decode()
    assert "delete_selected" not in changelist


# --- Certificates: actions --------------------------------------------------------------------


def _action(client, name, ids, **extra):
    return client.post(CERTS, {"action": name, "_selected_action": [str(i) for i in ids], **extra})


def test_a_user_is_offered_no_revoke_or_renew_action(clients, leaf):
    page = clients["user"].get(CERTS).content.decode()
    assert 'value="revoke_selected"' not in page
    assert 'value="renew_selected"' not in page
    assert 'value="download_selected"' in page
    manager_page = clients["manager"].get(CERTS).content.decode()
    assert 'value="revoke_selected"' in manager_page
    assert 'value="renew_selected"' in manager_page


def test_the_server_refuses_the_revoke_action_to_a_user(clients, leaf):
    _action(clients["user"], "revoke_selected", [leaf.pk], apply="1", reason="keyCompromise")
    leaf.refresh_from_db()
    assert leaf.revoked_at is None


def test_revoke_action_asks_for_a_reason_then_revokes(clients, leaf):
    client = clients["manager"]
    form = _action(client, "revoke_selected", [leaf.pk])
    page = form.content.decode()
    assert form.status_code == 200
    assert "Revoke certificates" in page
    assert '<label for="id_reason"' in page
    assert "Root password" not in page  # only asked when a CA certificate is selected
    bad = _action(client, "revoke_selected", [leaf.pk], apply="1", reason="bogus")
    assert bad.status_code == 400
    assert "Select a valid choice" in bad.content.decode()
    leaf.refresh_from_db()
    assert leaf.revoked_at is None
    done = client.post(CERTS, {"action": "revoke_selected", "_selected_action": [leaf.pk], "apply": "1",
                               "reason": "keyCompromise"}, follow=True)
    assert "Revoked 1: www.example.com" in done.content.decode()
    leaf.refresh_from_db()
    assert leaf.revocation_reason == "keyCompromise"


def test_revoke_action_on_a_ca_asks_for_the_root_password(clients, hierarchy, leaf):
    client = clients["admin"]
    intermediate = hierarchy.intermediate.certificate
    page = _action(client, "revoke_selected", [intermediate.pk]).content.decode()
    assert "Root password" in page
    assert 'type="password"' in page
    wrong = client.post(CERTS, {"action": "revoke_selected", "_selected_action": [intermediate.pk], "apply": "1",
                                "reason": "cessationOfOperation", "root_password": "nope nope nope nope",
                                "revoke_children": "on"}, follow=True)
    text = wrong.content.decode()
    assert "not revoked: The CA key could not be unlocked." in text
    assert "nope nope nope nope" not in text
    assert AuditEvent.objects.filter(action="ca.unlock", outcome="failure").count() == 1
    intermediate.refresh_from_db()
    assert intermediate.revoked_at is None
    client.post(CERTS, {"action": "revoke_selected", "_selected_action": [intermediate.pk], "apply": "1",
                        "reason": "cessationOfOperation", "root_password": ROOT_PASSWORD, "revoke_children": "on"})
    intermediate.refresh_from_db()
    leaf.refresh_from_db()
    assert intermediate.revoked_at is not None
    assert leaf.revoked_at is not None


def test_renew_and_download_actions(clients, leaf):
    client = clients["manager"]
    done = client.post(CERTS, {"action": "renew_selected", "_selected_action": [leaf.pk]}, follow=True)
    assert "Renewed 1: www.example.com" in done.content.decode()
    successor = Certificate.objects.get(predecessor=leaf)
    again = client.post(CERTS, {"action": "renew_selected", "_selected_action": [leaf.pk]}, follow=True)
    assert "already been renewed" in again.content.decode()
    download = _action(clients["user"], "download_selected", [leaf.pk, successor.pk])
    assert download["Content-Type"] == "application/x-pem-file"
    assert download.content.count(b"BEGIN CERTIFICATE") == 2
    detail = client.get(f"{CERTS}{leaf.pk}/change/").content.decode()
    assert f"renewed as serial {successor.serial[:16]}" in detail


# --- CAs: tree and creation forms ---------------------------------------------------------------


def test_ca_list_shows_the_hierarchy_as_a_tree(clients, hierarchy, other_hierarchy):
    page = clients["user"].get(CAS).content.decode()
    tree = re.search(r'<ul class="pki-tree">(.*)</section>', page, re.S).group(1)
    root_at, child_at = tree.index(hierarchy.root.name), tree.index(hierarchy.intermediate.name)
    assert root_at < child_at
    assert "<ul" in tree[root_at:child_at]  # the intermediate is nested under its root
    assert "Other Root CA" not in page
    assert "Create a root CA" not in page  # users and managers create no CA
    assert "Create a root CA" in clients["admin"].get(CAS).content.decode()


def test_create_a_root_ca_never_echoes_the_password(clients, organization, other_organization):
    client = clients["admin"]
    url = f"{CAS}create-root/"
    form = client.get(url).content.decode()
    assert other_organization.name not in form  # an organization's admin creates roots for their own only
    mismatch = client.post(url, {"organization": organization.pk, "common_name": "New Root", "key_type": "ec-p256",
                                 "days": "3650", "root_password": "a sturdy password 1234",
                                 "root_password_confirm": "another sturdy password"})
    page = mismatch.content.decode()
    assert mismatch.status_code == 400
    assert "The two passwords differ." in page
    assert "a sturdy password 1234" not in page
    assert "another sturdy password" not in page
    assert not CertificateAuthority.objects.filter(name="New Root").exists()
    weak = client.post(url, {"organization": organization.pk, "common_name": "New Root", "key_type": "ec-p256",
                             "days": "3650", "root_password": "short", "root_password_confirm": "short"})
    assert weak.status_code == 400
    assert 'value="short"' not in weak.content.decode()
    assert not CertificateAuthority.objects.filter(name="New Root").exists()
    created = client.post(url, {"organization": organization.pk, "common_name": "New Root", "key_type": "ec-p256",
                                "days": "3650", "root_password": "a sturdy password 1234",
                                "root_password_confirm": "a sturdy password 1234"}, follow=True)
    assert "Root CA “New Root” (new-root) created" in created.content.decode()
    assert CertificateAuthority.objects.get(name="New Root").organization == organization


def test_create_an_intermediate_ca_with_the_wrong_then_right_password(clients, hierarchy):
    client = clients["admin"]
    url = f"{CAS}create-intermediate/"
    data = {"parent": hierarchy.root.pk, "common_name": "Second Issuing CA", "key_type": "ec-p256",
            "days": "365", "path_length": "0", "root_password": "definitely not it 42"}
    wrong = client.post(url, data)
    assert wrong.status_code == 400
    assert "The CA key could not be unlocked." in wrong.content.decode()
    assert "definitely not it 42" not in wrong.content.decode()
    assert not CertificateAuthority.objects.filter(name="Second Issuing CA").exists()
    created = client.post(url, {**data, "root_password": ROOT_PASSWORD}, follow=True)
    assert "Intermediate CA “Second Issuing CA”" in created.content.decode()
    ca = CertificateAuthority.objects.get(name="Second Issuing CA")
    assert ca.parent == hierarchy.root
    first_crl = ca.crls.filter(delta_base_number__isnull=True).get()  # the message names the CRL that exists
    assert (f"with its first CRL #{first_crl.number} (next update {first_crl.next_update:%Y-%m-%d %H:%M} UTC)"
            in created.content.decode())


def test_create_an_intermediate_ca_for_chosen_purposes(clients, hierarchy):
    from certificates.services.authorities import ca_purposes

    client = clients["admin"]
    url = f"{CAS}create-intermediate/"
    form = client.get(url).content.decode()
    assert "<legend>Purposes</legend>" in form
    assert form.count('name="purposes"') == 3
    assert form.count("checked") >= 3  # all three by default
    data = {"parent": hierarchy.root.pk, "common_name": "Mail Issuing CA", "key_type": "ec-p256", "days": "365",
            "path_length": "0", "root_password": ROOT_PASSWORD, "purposes": ["emailProtection"]}
    created = client.post(url, data, follow=True)
    assert "Intermediate CA “Mail Issuing CA”" in created.content.decode()
    ca = CertificateAuthority.objects.get(name="Mail Issuing CA")
    assert ca_purposes(ca) == ["emailProtection"]
    assert "emailProtection" in client.get(f"{CAS}{ca.pk}/change/").content.decode()
    refused = client.post(url, {**data, "common_name": "Odd CA", "purposes": ["codeSigning"]})
    assert refused.status_code == 400
    assert not CertificateAuthority.objects.filter(name="Odd CA").exists()


def test_ca_creation_is_for_admins_only(clients, hierarchy, organization):
    for role in ("user", "manager", "other_manager"):
        assert clients[role].get(f"{CAS}create-root/").status_code == 403, role
        response = clients[role].post(f"{CAS}create-intermediate/", {
            "parent": hierarchy.root.pk, "common_name": "Nope", "key_type": "ec-p256", "days": "365",
            "root_password": ROOT_PASSWORD})
        assert response.status_code == 403, role
    assert not CertificateAuthority.objects.filter(name="Nope").exists()


def test_regenerate_crl_action(clients, hierarchy):
    client = clients["manager"]
    before = CertificateRevocationList.objects.filter(ca=hierarchy.intermediate).count()
    done = client.post(CAS, {"action": "regenerate_crl", "_selected_action": [hierarchy.intermediate.pk]},
                       follow=True)
    assert f"Signed a CRL for 1: {hierarchy.intermediate.name} (CRL #" in done.content.decode()
    assert CertificateRevocationList.objects.filter(ca=hierarchy.intermediate).count() == before + 2  # full + delta
    root_before = CertificateRevocationList.objects.filter(ca=hierarchy.root).count()
    refused = client.post(CAS, {"action": "regenerate_crl", "_selected_action": [hierarchy.root.pk], "apply": "1",
                                "root_password": ROOT_PASSWORD})
    assert refused.status_code == 403  # a root's CRL is for admins, as in the API
    assert "Only an admin may sign a root CA&#x27;s CRL." in refused.content.decode()
    assert CertificateRevocationList.objects.filter(ca=hierarchy.root).count() == root_before
    admin = clients["admin"]
    form = admin.post(CAS, {"action": "regenerate_crl", "_selected_action": [hierarchy.root.pk]})
    assert "Root password" in form.content.decode()
    signed = admin.post(CAS, {"action": "regenerate_crl", "_selected_action": [hierarchy.root.pk], "apply": "1",
                              "root_password": ROOT_PASSWORD}, follow=True)
    assert f"Signed a CRL for 1: {hierarchy.root.name}" in signed.content.decode()
    assert CertificateRevocationList.objects.filter(ca=hierarchy.root).count() == root_before + 1
    assert 'value="regenerate_crl"' not in clients["user"].get(CAS).content.decode()


def test_crl_list_is_scoped_and_read_only(clients, hierarchy, other_hierarchy):
    response = clients["manager"].get(CRLS)
    cas = {crl.ca_id for crl in response.context["cl"].result_list}
    assert cas == {hierarchy.root.pk, hierarchy.intermediate.pk}  # both sign their first CRLs when created
    assert f"/pki/crl/{hierarchy.root.slug}.crl" in response.content.decode()
    # No way to add a CRL by hand (the navigation may still offer other models, e.g. certificate profiles).
    assert "/admin/certificates/certificaterevocationlist/add/" not in response.content.decode()


# --- Actions meet the service layer's rules ------------------------------------------------


def _revoked_count() -> int:
    return Certificate.objects.filter(revoked_at__isnull=False).count()


@pytest.mark.parametrize("which", ["intermediate", "root", "responder"])
def test_a_manager_revokes_no_ca_and_no_responder_through_the_action(clients, hierarchy, which):
    from certificates.services.ocsp import issue_responder_certificate

    certificate = {"intermediate": hierarchy.intermediate.certificate, "root": hierarchy.root.certificate,
                   "responder": issue_responder_certificate(hierarchy.intermediate)}[which]
    head = AuditEvent.objects.order_by("-seq").values_list("seq", flat=True).first() or 0
    client = clients["manager"]
    asked = _action(client, "revoke_selected", [certificate.pk])  # no form is even offered
    assert asked.status_code == 403
    assert "Root password" not in asked.content.decode()
    applied = _action(client, "revoke_selected", [certificate.pk], apply="1", reason="keyCompromise",
                      root_password=ROOT_PASSWORD, revoke_children="on")
    text = applied.content.decode()
    assert applied.status_code == 403
    assert "Nothing was revoked." in text
    assert f"{certificate}: Only an admin may revoke" in text
    assert _revoked_count() == 0
    # Only the two refusals themselves are on the record (access.deny): no unlock attempt either.
    assert list(AuditEvent.objects.filter(seq__gt=head).values_list("action", flat=True)) == ["access.deny"] * 2


def test_one_refused_object_refuses_the_whole_action(clients, hierarchy, leaf):
    response = _action(clients["manager"], "revoke_selected", [leaf.pk, hierarchy.intermediate.certificate.pk],
                       apply="1", reason="superseded")
    assert response.status_code == 403
    assert _revoked_count() == 0  # the end-entity certificate the manager could revoke is left alone too
    done = _action(clients["admin"], "revoke_selected", [leaf.pk], apply="1", reason="superseded")
    assert done.status_code == 302
    assert _revoked_count() == 1


def test_an_action_the_role_is_not_offered_is_403(clients, hierarchy, leaf):
    response = _action(clients["user"], "revoke_selected", [leaf.pk], apply="1", reason="keyCompromise")
    assert response.status_code == 403
    assert "Your role may not use this action." in response.content.decode()
    renew = _action(clients["user"], "renew_selected", [leaf.pk])
    assert renew.status_code == 403
    crl = clients["user"].post(CAS, {"action": "regenerate_crl", "_selected_action": [hierarchy.intermediate.pk]})
    assert crl.status_code == 403
    assert _revoked_count() == 0
    assert not Certificate.objects.filter(predecessor=leaf).exists()


def test_a_selection_outside_the_organization_is_404_and_one_that_is_not_an_id_400(clients, leaf, other_leaf):
    missing = _action(clients["manager"], "revoke_selected", [leaf.pk, other_leaf.pk], apply="1", reason="superseded")
    assert missing.status_code == 404
    garbage = clients["manager"].post(CERTS, {"action": "revoke_selected", "_selected_action": ["1 OR 1=1"],
                                              "apply": "1", "reason": "superseded"})
    assert garbage.status_code == 400
    assert "The selection is not a list of ids." in garbage.content.decode()
    assert _revoked_count() == 0


def test_a_manager_signs_no_root_crl_through_the_action(clients, hierarchy):
    before = CertificateRevocationList.objects.count()
    for data in ({}, {"apply": "1", "root_password": ROOT_PASSWORD}):
        response = clients["manager"].post(CAS, {"action": "regenerate_crl",
                                                 "_selected_action": [hierarchy.root.pk, hierarchy.intermediate.pk],
                                                 **data})
        assert response.status_code == 403
        assert "No CRL was signed." in response.content.decode()
        assert "Only an admin may sign a root CA&#x27;s CRL." in response.content.decode()
    assert CertificateRevocationList.objects.count() == before  # not even the intermediate's
