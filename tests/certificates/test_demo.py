"""`make run`'s demo bootstrap: CAs created once, the root password shown once and never stored."""

from __future__ import annotations

import pytest
from django.core import serializers

from certificates.demo import DEMO_INTERMEDIATE_SLUG, DEMO_ROOT_SLUG, ROOT_PASSWORD_HEADING, bootstrap_demo
from certificates.models import CertificateAuthority, CertificateRevocationList
from tests.helpers import unlock_root


@pytest.mark.django_db
def test_demo_hierarchy_is_created_once_with_a_password_shown_once(operator):
    first: list[str] = []
    second: list[str] = []
    bootstrap_demo(say=first.append)
    bootstrap_demo(say=second.append)

    password_line = first.index(ROOT_PASSWORD_HEADING) + 1
    root_password = first[password_line].strip()
    root = CertificateAuthority.objects.get(slug=DEMO_ROOT_SLUG)
    intermediate = CertificateAuthority.objects.get(slug=DEMO_INTERMEDIATE_SLUG)
    assert intermediate.parent == root
    assert unlock_root(root, root_password, operator) is not None
    assert CertificateAuthority.objects.count() == 2
    assert CertificateRevocationList.objects.filter(ca=root).exists()
    assert CertificateRevocationList.objects.filter(ca=intermediate).exists()
    assert root_password not in "\n".join(second)
    assert any("already exists" in line and DEMO_ROOT_SLUG in line for line in second)
    dump = serializers.serialize("json", CertificateAuthority.objects.all())
    assert root_password not in dump
