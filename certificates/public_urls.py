"""The public /pki/ routes (included from pki_project.urls under `pki/`); all public in rbac.json.

Delta CRLs live beside the full CRL: /pki/crl/{ca}.delta.crl (DER) and .delta.pem; that
URL is what the freshestCRL extension of certificates issued by an intermediate names.
"""

from django.urls import path

from certificates import public_views

urlpatterns = [
    path("ca/<slug:ca>.crt", public_views.ca_certificate, {"encoding": "der"}, name="pki-ca-der"),
    path("ca/<slug:ca>.pem", public_views.ca_certificate, {"encoding": "pem"}, name="pki-ca-pem"),
    path("crl/<slug:ca>.crl", public_views.crl, {"encoding": "der"}, name="pki-crl-der"),
    path("crl/<slug:ca>.pem", public_views.crl, {"encoding": "pem"}, name="pki-crl-pem"),
    path("crl/<slug:ca>.delta.crl", public_views.crl, {"encoding": "der", "delta": True}, name="pki-delta-crl-der"),
    path("crl/<slug:ca>.delta.pem", public_views.crl, {"encoding": "pem", "delta": True}, name="pki-delta-crl-pem"),
    path("ocsp/<slug:ca>/", public_views.ocsp_post, name="pki-ocsp-post"),
    path("ocsp/<slug:ca>/<path:request_b64>", public_views.ocsp_get, name="pki-ocsp-get"),
    # Everything else below ocsp/ answers in OCSP too (malformedRequest / unauthorized), never a page.
    path("ocsp/", public_views.ocsp_elsewhere, name="pki-ocsp-no-ca"),
    path("ocsp/<path:rest>", public_views.ocsp_elsewhere, name="pki-ocsp-other"),
]
