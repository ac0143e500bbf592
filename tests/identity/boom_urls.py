"""A URLconf for the error-handling tests: the real one plus two views that fail."""

from django.urls import path

from pki_project.urls import handler400, handler403, handler404, handler500, urlpatterns  # noqa: F401


def boom(request):
    raise RuntimeError("internal detail: secret-path /var/lib/pki and a stack frame")


urlpatterns = [*urlpatterns, path("api/v1/boom/", boom), path("boom", boom)]
