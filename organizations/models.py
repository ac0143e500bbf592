"""Organizations: the tenants of the PKI. Every CA, certificate and user belongs to one."""

from __future__ import annotations

from django.db import models
from django.db.models.functions import Lower


class Organization(models.Model):
    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["slug"]
        constraints = [
            models.UniqueConstraint(Lower("name"), name="organization_name_unique_ci"),
            models.CheckConstraint(condition=~models.Q(slug=""), name="organization_slug_not_empty"),
        ]

    def __str__(self) -> str:
        return self.name
