"""The query of `GET /v2/pre-recorded` for the Gladia emulator: filters and page window. Pure; stdlib only."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime

from transcribed.emulator.jobs import ListQuery

STATUSES = ("queued", "processing", "done", "error")


class BadQuery(ValueError):
    """The list query has bad values; `problems` holds one class-validator style line each."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class ListPage:
    """What a list request asks for: filters, kinds (legacy alias), and the page window."""

    query: ListQuery
    kinds: frozenset[str]
    offset: int
    limit: int


def parse_list_query(pairs: list[tuple[str, str]]) -> ListPage:
    """Given the list's query pairs, return the page asked for; raise BadQuery naming every bad value.
    custom_metadata is accepted in both forms: `custom_metadata[key]=value` and a JSON object string."""
    problems: list[str] = []
    values: dict[str, str] = dict(pairs)
    offset = _whole(values.get("offset", "0"), "offset", 0, problems)
    limit = _whole(values.get("limit", "20"), "limit", 1, problems)
    statuses = {part for name, value in pairs if name in ("status", "status[]") for part in value.split(",") if part}
    if statuses - set(STATUSES):
        problems.append("each value in status must be one of the following values: " + ", ".join(STATUSES))
    kinds = {part for name, value in pairs if name in ("kind", "kind[]") for part in value.split(",") if part}
    day = values.get("date")
    if day is not None and not re.fullmatch(r"\d{4}-\d{2}-\d{2}", day[:10]):
        problems.append("date must be a valid ISO 8601 date string")
    before = _moment(values.get("before_date"), "before_date", problems)
    after = _moment(values.get("after_date"), "after_date", problems)
    metadata: list[tuple[str, object, bool]] = []
    for name, value in pairs:
        deep = re.fullmatch(r"custom_metadata\[([^\]]+)\]", name)
        if deep:
            metadata.append((deep.group(1), value, True))
        elif name == "custom_metadata":
            try:
                parsed = json.loads(value)
            except ValueError:
                parsed = None
            if not isinstance(parsed, dict):
                problems.append("custom_metadata must be a JSON object")
            else:
                metadata += [(key, wanted, False) for key, wanted in parsed.items()]
    if problems:
        raise BadQuery(problems)
    query = ListQuery(statuses=frozenset(statuses), day=day[:10] if day else None, before=before, after=after,
                      metadata=tuple(metadata))
    return ListPage(query=query, kinds=frozenset(kinds), offset=offset, limit=limit)


def _whole(text: str, name: str, least: int, problems: list[str]) -> int:
    try:
        number = int(text)
    except ValueError:
        problems.append(f"{name} must be an integer number")
        return least
    if number < least:
        problems.append(f"{name} must not be less than {least}")
        return least
    return number


def _moment(text: str | None, name: str, problems: list[str]) -> datetime | None:
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        problems.append(f"{name} must be a valid ISO 8601 date string")
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
