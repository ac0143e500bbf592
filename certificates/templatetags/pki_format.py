"""One date format on every staff page: ISO 8601 in UTC, `2026-12-04 01:02 UTC`, machine-readable in `<time>`."""

from __future__ import annotations

from datetime import UTC, datetime

from django import template
from django.utils.html import format_html

register = template.Library()


def iso_utc_text(moment: datetime | None) -> str:
    """`YYYY-MM-DD HH:MM UTC` (the CSV export and messages use the same), or an empty string."""
    if moment is None:
        return ""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


@register.filter
def utc(moment: datetime | None, empty: str = "—"):
    """A `<time>` element whose text reads `2026-12-04 01:02 UTC` and whose datetime is the full ISO value.

    A narrow column may wrap it between the date and the time, never inside either.
    """
    if not isinstance(moment, datetime):
        return empty
    value = moment.astimezone(UTC)
    return format_html('<time datetime="{}"><span>{}</span> <span>{}</span></time>',
                       value.strftime("%Y-%m-%dT%H:%M:%SZ"), value.strftime("%Y-%m-%d"), value.strftime("%H:%M UTC"))
