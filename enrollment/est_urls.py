"""EST (RFC 7030 3.2.2) routes, included under `.well-known/est/<slug:ca>/`; every one is public in rbac.json."""

from django.urls import path

from enrollment import views

urlpatterns = [
    path("cacerts", views.cacerts, name="est-cacerts"),
    path("simpleenroll", views.simpleenroll, name="est-simpleenroll"),
    path("simplereenroll", views.simplereenroll, name="est-simplereenroll"),
    path("csrattrs", views.csrattrs, name="est-csrattrs"),
]
