"""How values read on a dashboard page: durations, moments, counts, JSON and URL
path segments, as the templates' filters.

Every page formats the same kind of value the same way because they all go
through these functions; a missing value reads as an en dash everywhere.
"""

from __future__ import annotations

import json
import urllib.parse
from datetime import UTC, datetime, timedelta
from typing import Any

NOTHING = "\u2013"
"""What a missing time or duration reads (an en dash)."""


def pretty_json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


def compact_json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


def duration(value: timedelta | float | None) -> str:
    """``timedelta(seconds=75)`` reads ``1 min 15 s``; under a minute, tenths show."""
    if value is None:
        return NOTHING
    seconds = value.total_seconds() if isinstance(value, timedelta) else float(value)
    if seconds < 60:
        return f"{seconds:.1f} s" if seconds < 10 else f"{seconds:.0f} s"
    minutes, seconds = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {seconds} s" if seconds else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    return f"{hours // 24} d {hours % 24} h"


def ago(moment: datetime | None) -> str:
    """How far ``moment`` is from now: ``12 s ago`` or ``in 3 min``."""
    if moment is None:
        return NOTHING
    gap = moment - datetime.now(UTC)
    if abs(gap) < timedelta(seconds=1):
        return "now"
    if gap > timedelta(0):
        return f"in {duration(gap)}"
    return f"{duration(-gap)} ago"


def number(value: int | float | None) -> str:
    """A count with thousands separators: ``12,000``."""
    if value is None:
        return NOTHING
    return f"{value:,}" if isinstance(value, int) else f"{value:,.1f}"


def when(moment: datetime | None) -> str:
    return NOTHING if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def path_part(value: str) -> str:
    """A value as one segment of a URL path (queue names may hold ``/``)."""
    return urllib.parse.quote(value, safe="")
