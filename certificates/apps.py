from django.apps import AppConfig


class CertificatesConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "certificates"

    def ready(self) -> None:
        from django.db.models.signals import post_migrate

        from certificates.services.profiles import check_configured_policy_oids, ensure_builtin_profiles

        check_configured_policy_oids()
        # Every migrate (and a test database's flush) leaves the four built-in profiles in place.
        post_migrate.connect(ensure_builtin_profiles, sender=self, dispatch_uid="certificates.builtin_profiles")
