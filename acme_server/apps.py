from django.apps import AppConfig


class AcmeServerConfig(AppConfig):
    name = "acme_server"
    verbose_name = "ACME (RFC 8555)"
    default_auto_field = "django.db.models.BigAutoField"
