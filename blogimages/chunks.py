"""Walking a large table in ordinary queries.

``QuerySet.iterator()`` on PostgreSQL holds a server-side cursor (a named cursor inside a
transaction) until the loop ends; a loop that ends early leaves it to the garbage
collector, and a later query on the same connection can fail because of it. ``keyset``
reads the same rows a page at a time, each page an ordinary ``SELECT ... WHERE key > last
ORDER BY key LIMIT n`` that is finished when it returns, and it never skips or repeats a
row when the loop changes rows it has read (as re-queueing does), unlike ``OFFSET``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from django.db.models import Q, QuerySet

__all__ = ["keyset"]


def keyset(queryset: QuerySet, fields: Sequence[str] = ("pk",), *, size: int = 200) -> Iterator[Any]:
    """Every row of ``queryset`` ordered by ``fields`` (unique together), ``size`` at a time.

    Rows may be model instances, ``values()`` dicts, or ``values_list()`` tuples whose first
    columns are ``fields`` in that order.
    """
    ordered = queryset.order_by(*fields)
    after: tuple | None = None
    while True:
        page = ordered if after is None else ordered.filter(_after(fields, after))
        rows = list(page[:size])
        yield from rows
        if len(rows) < size:
            return
        after = _key(rows[-1], fields)


def _after(fields: Sequence[str], values: tuple) -> Q:
    """Rows after ``values`` in ``fields`` order: (a > x) or (a = x and b > y) or ..."""
    condition = Q()
    for i, field in enumerate(fields):
        condition |= Q(
            **{name: value for name, value in zip(fields[:i], values[:i], strict=True)}, **{f"{field}__gt": values[i]}
        )
    return condition


def _key(row: Any, fields: Sequence[str]) -> tuple:
    if isinstance(row, tuple):
        return row[: len(fields)]
    if isinstance(row, dict):
        return tuple(row[field] for field in fields)
    return tuple(getattr(row, field) for field in fields)
