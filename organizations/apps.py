from django.apps import AppConfig


class OrganizationsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "organizations"
    verbose_name = "Organizations and access"

    def ready(self) -> None:
        from django.db.models.signals import post_migrate

        import pki_project.checks  # noqa: F401  (registers the rbac.json system check)
        from organizations import admin_site

        admin_site.use_pki_login()
        post_migrate.connect(_refresh_role_groups, dispatch_uid="organizations.refresh_role_groups")


def _refresh_role_groups(sender, **kwargs) -> None:
    """After every migrate, the role groups carry the permissions of all installed models."""
    from django.apps import apps

    if sender.name != list(apps.get_app_configs())[-1].name:  # once, after every app's permissions exist
        return
    from organizations.services import refresh_role_groups

    refresh_role_groups()
