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
        _guard_access_fields()


def _guard_access_fields() -> None:
    """is_staff/is_superuser are derived on every save; groups and permissions change only in sync_user_access."""
    from django.contrib.auth import get_user_model
    from django.db.models.signals import m2m_changed, pre_save

    from organizations.services import derive_access_flags, refuse_direct_access_changes

    user_model = get_user_model()
    pre_save.connect(derive_access_flags, sender=user_model, dispatch_uid="organizations.derive_access_flags")
    for relation in (user_model.groups, user_model.user_permissions):
        m2m_changed.connect(refuse_direct_access_changes, sender=relation.through,
                            dispatch_uid=f"organizations.guard_{relation.field.name}")


def _refresh_role_groups(sender, **kwargs) -> None:
    """After every migrate, the role groups carry the permissions of all installed models."""
    from django.apps import apps

    # Once, after every app's permissions exist: Django sends post_migrate only for apps with models, so the
    # last of those (an app without models, such as backups, never sends it).
    with_models = [config for config in apps.get_app_configs() if config.models_module is not None]
    if sender.name != with_models[-1].name or not _auth_tables_exist(kwargs.get("using", "default")):
        return
    from organizations.services import refresh_role_groups

    refresh_role_groups()


def _auth_tables_exist(using: str) -> bool:
    """A partial migrate (`migrate audit 0003` on an empty database) still sends post_migrate for every app."""
    from django.db import connections

    tables = set(connections[using].introspection.table_names())
    return {"auth_group", "auth_permission", "auth_group_permissions", "django_content_type"} <= tables
