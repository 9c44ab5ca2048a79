"""Listing per-qualifier configs (event invoke configs, provisioned concurrency) a page at a time.

AWS lists $LATEST first, then versions by number, then aliases by name; the marker is the last
qualifier of the previous page (opaque to clients: base64), so a page stays correct when configs
are added or removed between calls.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable

from lamina.errors import AwsError
from lamina.model.function import LATEST

DEFAULT_PAGE = 50


def qualifier_order(qualifier: str) -> tuple[int, int, str]:
    if qualifier == LATEST:
        return (0, 0, "")
    return (1, int(qualifier), "") if qualifier.isdigit() else (2, 0, qualifier)


def qualifier_page(
    qualifiers: Iterable[str], marker: str | None, max_items: int | None
) -> tuple[list[str], str | None]:
    """(this page's qualifiers in AWS's order, the next marker or None)."""
    ordered = sorted(qualifiers, key=qualifier_order)
    start = 0
    if marker:
        try:
            after = qualifier_order(base64.urlsafe_b64decode(marker.encode()).decode())
        except (ValueError, UnicodeDecodeError) as exc:
            raise AwsError("InvalidParameterValueException", "Invalid marker.") from exc
        start = next((i for i, q in enumerate(ordered) if qualifier_order(q) > after), len(ordered))
    limit = max_items or DEFAULT_PAGE
    page = ordered[start : start + limit]
    more = start + limit < len(ordered)
    return page, base64.urlsafe_b64encode(page[-1].encode()).decode() if more and page else None
