"""Schedules: Prefect's validators without Prefect, and the schedules of one entry.

The validators are Prefect's own where only they give the same answer (the cron check of
the croniter Prefect vendors, loaded from its file; the timezone lists of cron/interval and
of rrule schedules; dateutil for rrules; Prefect's date-time parsing for anchor dates),
with a fast answer for plain cron expressions. `_ScheduleChecks` reads an entry's
`schedules:` (or legacy `schedule:`) into what Prefect sends to the API, each fault a
problem at its line.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import re
import sys
import zoneinfo
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter, ValidationError

from control_plane.errors import DeployManagerError
from control_plane.prefect_yaml.models import (
    DeploymentEntry,
    ScheduleEntry,
    _jsonable,
    is_templated,
)
from control_plane.prefect_yaml.problems import _EntryProblems, _show, _suggest
from control_plane.yaml_lines import value_at

MAX_RRULE_LENGTH = 6500  # prefect._internal.schemas.validators.MAX_RRULE_LENGTH

CRON_REMEDY = (
    "write five fields, minute hour day-of-month month day-of-week, "
    "e.g. '0 6 * * 1-5' (06:00 on weekdays)"
)
TIMEZONE_REMEDY = "use an IANA timezone name such as 'Europe/Berlin', 'America/New_York' or 'UTC'"
INTERVAL_REMEDY = (
    "give a positive number of seconds (3600), an ISO 8601 duration ('PT1H') or 'HH:MM:SS'; "
    "Prefect parses interval before it resolves templates, so it cannot be a template"
)
RRULE_REMEDY = (
    "write an RFC 5545 rule, e.g. 'FREQ=WEEKLY;BYDAY=MO;BYHOUR=9' or "
    "'DTSTART:20240101T090000\\nRRULE:FREQ=DAILY'"
)
ANCHOR_REMEDY = "write an ISO 8601 date-time in quotes, e.g. '2024-01-01T09:00:00+01:00'"

# What each kind of schedule takes that the others do not: Prefect ignores them elsewhere.
SCHEDULE_KEY_KINDS = {"anchor_date": "interval", "day_or": "cron"}
SCHEDULE_KEYS_OF_OTHER_KINDS = {
    "cron": ("anchor_date",),
    "interval": ("day_or",),
    "rrule": ("anchor_date", "day_or"),
}
SCHEDULE_CODES = {
    "cron": "invalid-cron",
    "interval": "invalid-interval",
    "rrule": "invalid-rrule",
    "timezone": "invalid-timezone",
    "anchor_date": "invalid-anchor-date",
}
SCHEDULE_REMEDIES = {
    "cron": CRON_REMEDY,
    "interval": INTERVAL_REMEDY,
    "rrule": RRULE_REMEDY,
    "timezone": TIMEZONE_REMEDY,
    "anchor_date": ANCHOR_REMEDY,
}


# --- Prefect's validators, without Prefect --------------------------------------------


@functools.cache
def _cron_is_valid() -> Callable[[str], bool]:
    """Prefect's own cron check: `is_valid` of the croniter Prefect vendors.

    Prefect (3.8, 3.9) validates cron strings with `prefect._vendor.croniter` (not
    cronsim). Importing it as `prefect._vendor...` would run `prefect/__init__` (2.5 s), so
    the one vendored file, which needs only the standard library, dateutil and pytz, is
    loaded from its path. There is no stand-in: another parser would accept other strings.
    """
    spec = importlib.util.find_spec("prefect")
    for location in (spec.submodule_search_locations or []) if spec else []:
        source = Path(location, "_vendor", "croniter", "croniter.py")
        name = "control_plane._prefect_croniter"
        module_spec = importlib.util.spec_from_file_location(name, source)
        if not source.is_file() or module_spec is None or module_spec.loader is None:
            continue
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[name] = module
        try:
            module_spec.loader.exec_module(module)
        except Exception:
            del sys.modules[name]
            continue
        is_valid: Callable[[str], bool] = module.croniter.is_valid
        return is_valid
    raise DeployManagerError(
        "deploy-manager checks cron schedules with the croniter Prefect vendors "
        "(prefect/_vendor/croniter/croniter.py), which the Prefect installed here does not "
        "have; install the Prefect deploy-manager declares (uv sync)"
    )


def cron_is_valid(expression: str) -> bool:
    """`prefect._internal.schemas.validators.validate_cron_string`, as a predicate."""
    if _plainly_valid_cron(expression):
        return True
    if not _cron_is_valid()(expression):
        return False
    return not any(field.casefold() in ("r", "h") for field in expression.split())


# The highest value of each of the five fields (minute, hour, day of month, month, day of
# week), and the lowest of the day of month and the month.
_PLAIN_CRON_MAX = (59, 23, 31, 12, 6)
_PLAIN_CRON_MIN = (0, 0, 1, 1, 0)
_PLAIN_CRON_FIELD = re.compile(r"\*|(\*/)?(0|[1-9][0-9]?)")


def _plainly_valid_cron(expression: str) -> bool:
    """Whether the expression is of the plain kind croniter is known to accept.

    Five fields, each `*`, a number in the field's range or `*/n` with n from 1 to that
    range's top (tests compare every such field, and combinations of their bounds, with
    Prefect). Loading the vendored croniter costs more than a thousand flow files' other
    schedule checks, so the common `0 6 * * *` is answered here and anything else there.
    """
    fields = expression.split(" ")
    if len(fields) != 5:
        return False
    for field, low, high in zip(fields, _PLAIN_CRON_MIN, _PLAIN_CRON_MAX, strict=True):
        match = _PLAIN_CRON_FIELD.fullmatch(field)
        if match is None:
            return False
        if field == "*":
            continue
        value = int(match.group(2))
        if match.group(1) is None and not low <= value <= high:
            return False
        if match.group(1) is not None and not 1 <= value <= high:
            return False
    return True


CRON_FIELDS = (
    ("minute", "0-59"),
    ("hour", "0-23"),
    ("day of month", "1-31"),
    ("month", "1-12 or JAN-DEC"),
    ("day of week", "0-6 or SUN-SAT"),
    ("second", "0-59"),
    ("year", "1970-2099"),
)
CRON_ALIASES = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")


def _cron_reason(expression: str) -> str:
    fields = expression.split()
    if any(field.casefold() in ("r", "h") for field in fields):
        return "random (R) and hashed (H) expressions are not supported by Prefect"
    if expression.strip().startswith("@"):
        return f"unknown alias; Prefect knows {', '.join(CRON_ALIASES)}"
    if len(fields) not in (5, 6, 7):
        return f"expected 5 fields (minute hour day-of-month month day-of-week), got {len(fields)}"
    check = _cron_is_valid()
    for index, field in enumerate(fields):
        probe = ["*"] * len(fields)
        probe[index] = field
        if not check(" ".join(probe)):
            name, allowed = CRON_FIELDS[index]
            return f"{name} must be {allowed}, not {field!r}"
    return "its fields do not combine into a valid schedule"


@functools.cache
def _zoneinfo_names() -> frozenset[str]:
    # prefect.types._datetime.get_timezones: the list for cron and interval schedules
    return frozenset(zoneinfo.available_timezones())


@functools.cache
def _pytz_names() -> frozenset[str]:
    # prefect.client.schemas.schedules.is_valid_timezone: the list for rrule schedules
    import pytz

    return frozenset(pytz.all_timezones)  # all_timezones_set is lazy: iterating it finds nothing


def _timezone_hint(value: str, names: frozenset[str]) -> str:
    by_lower = {name.lower(): name for name in names}
    if value.lower() in by_lower:
        return f"; did you mean {by_lower[value.lower()]!r}? (names are case-sensitive)"
    close = _suggest(value, sorted(names))
    return f"; did you mean {', '.join(map(repr, close))}?" if close else ""


def _rrule_reason(value: str) -> str | None:
    """`validate_rrule_string`: dateutil must parse it, and it must not be too long."""
    import dateutil.rrule

    try:
        dateutil.rrule.rrulestr(value, cache=True)
    except Exception as exc:  # ValueError mostly; odd input raises others
        return str(exc) or type(exc).__name__
    if len(value) > MAX_RRULE_LENGTH:
        return f"it is {len(value)} characters long; Prefect allows {MAX_RRULE_LENGTH}"
    return None


def _parse_anchor(value: str) -> datetime | None:
    """`prefect.types._datetime.parse_datetime`; a naive date-time is UTC."""
    try:
        parsed: datetime | None = datetime.fromisoformat(value)
    except ValueError:
        parsed = None
    if parsed is None:
        # Prefect parses with pendulum below Python 3.13, with dateutil from 3.13 on;
        # pendulum takes 0.15 s to import, so only what fromisoformat refuses goes there.
        try:
            if sys.version_info >= (3, 13):
                from dateutil.parser import parse

                parsed = parse(value)
            else:
                import pendulum

                result = pendulum.parse(value)
                parsed = result if isinstance(result, datetime) else None
        except Exception:
            return None
    if parsed is None:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _iso_anchor(value: datetime | date) -> str:
    """An anchor date as Prefect's IntervalSchedule sends it to the API."""
    if not isinstance(value, datetime):
        value = datetime(value.year, value.month, value.day)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    text = value.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


_BOOL: TypeAdapter[bool] = TypeAdapter(bool)


def _as_bool(value: Any) -> bool | None:
    try:
        return _BOOL.validate_python(value)
    except ValidationError:
        return None


# --- the schedules of one entry ---------------------------------------------------------


class _ScheduleChecks(_EntryProblems):
    """The schedules of one `deployments:` item, as Prefect builds them for the API."""

    def check_schedules(
        self, entry: DeploymentEntry, data: dict[Any, Any], bad: set[Any]
    ) -> tuple[dict[str, Any], ...]:
        if entry.schedule and "schedule" not in bad:
            if "schedules" in data:
                self.problem(
                    ("schedule",),
                    "invalid-schedule",
                    "both schedule and schedules are given; prefect deploy refuses that",
                    "move the schedule into the schedules: list",
                )
                return ()
            self.problem(
                ("schedule",),
                "deprecated-key",
                "schedule: is the old single-schedule form",
                "write schedules: [ ... ] (a list)",
                "warning",
            )
            normalised = self.schedule(data["schedule"], ("schedule",))
            return (normalised,) if normalised else ()
        out = []
        for index, item in enumerate(entry.schedules or ()):
            normalised = self.schedule(item, ("schedules", index))
            if normalised:
                out.append(normalised)
        return tuple(out)

    def schedule(self, item: Any, path: tuple[Any, ...]) -> dict[str, Any] | None:
        """One schedule as Prefect sends it (`_schedule_config_to_deployment_schedule`)."""
        if not isinstance(item, dict) or not item:
            detail = (
                "the schedule is empty; prefect deploy fails on it"
                if isinstance(item, dict)
                else f"{_show(item)} is not a mapping"
            )
            self.problem(
                path,
                "invalid-schedule",
                detail,
                "give a mapping with one of cron, interval or rrule",
            )
            return None
        errors = self.errors
        item = self.yaml_timestamps(item, path)
        if item is None:
            return None
        spec, bad = self.validate(ScheduleEntry, item, path, SCHEDULE_CODES, SCHEDULE_REMEDIES)
        kinds = [kind for kind in ("cron", "interval", "rrule") if item.get(kind) is not None]
        if len(kinds) != 1:
            self.problem(
                path,
                "invalid-schedule",
                "a schedule needs exactly one of cron, interval or rrule; it has "
                + (" and ".join(kinds) if kinds else "none of them"),
                "give each kind its own schedule",
            )
            return None
        if bad:
            return None
        for key in SCHEDULE_KEYS_OF_OTHER_KINDS[kinds[0]]:
            if item.get(key) is not None:
                self.problem(
                    (*path, key),
                    "ignored-key",
                    f"{key} belongs to {SCHEDULE_KEY_KINDS[key]} schedules; Prefect ignores it "
                    f"in a {kinds[0]} schedule",
                    f"remove {key}",
                    "warning",
                )
        inner: dict[str, Any] | None
        if spec.cron is not None:
            inner = self.cron(spec, path)
        elif spec.interval is not None:
            inner = self.interval(spec, path)
        else:
            inner = self.rrule(spec, path)
        active = self.boolean(spec.active, (*path, "active"))
        if inner is None or self.errors != errors:
            return None
        out: dict[str, Any] = {
            "schedule": inner,
            "active": True if active is None else active,
            "parameters": _jsonable(spec.parameters),
            "slug": spec.slug or None,
        }
        if spec.replaces:
            out["replaces"] = spec.replaces
        return out

    def yaml_timestamps(self, item: dict[Any, Any], path: tuple[Any, ...]) -> dict[Any, Any] | None:
        """An unquoted YAML date as anchor_date: Prefect takes it only in a bare interval.

        `RawScheduleConfig.anchor_date` is a string, so a YAML timestamp fails it, and
        the schedule then validates as an `IntervalSchedule` (interval, anchor_date,
        timezone: nothing else) or not at all.
        """
        anchor = item.get("anchor_date")
        if not isinstance(anchor, datetime | date):
            return item
        if set(item) <= {"interval", "anchor_date", "timezone"}:
            return {**item, "anchor_date": _iso_anchor(anchor)}
        self.problem(
            (*path, "anchor_date"),
            "invalid-anchor-date",
            f"{anchor.isoformat()} is an unquoted YAML date; Prefect accepts that only in a "
            "schedule with nothing but interval, anchor_date and timezone",
            f"quote it: anchor_date: '{anchor.isoformat()}'",
        )
        return None

    def boolean(self, value: Any, path: tuple[Any, ...]) -> Any:
        if value is None or isinstance(value, bool) or is_templated(value):
            return value
        parsed = _as_bool(value)
        if parsed is None:
            self.problem(
                path, "invalid-schedule", f"{value!r} is not a boolean", "write true or false"
            )
        return parsed

    def check_timezone(
        self, value: str | None, path: tuple[Any, ...], names: frozenset[str], empty_ok: bool
    ) -> None:
        if value is None or is_templated(value) or (empty_ok and value == "") or value in names:
            return
        self.problem(
            (*path, "timezone"),
            "invalid-timezone",
            f"{value!r} is not a valid timezone{_timezone_hint(value, names)}",
            TIMEZONE_REMEDY,
        )

    def cron(self, spec: ScheduleEntry, path: tuple[Any, ...]) -> dict[str, Any]:
        cron = spec.cron or ""
        if not cron:
            self.problem(
                (*path, "cron"),
                "invalid-cron",
                "the cron expression is empty; prefect deploy fails on it",
                CRON_REMEDY,
            )
        elif not is_templated(cron) and not cron_is_valid(cron):
            self.problem(
                (*path, "cron"),
                "invalid-cron",
                f"{cron!r} is not a valid cron expression ({_cron_reason(cron)})",
                CRON_REMEDY,
            )
        # CronSchedule accepts "" as a timezone (Prefect's default_timezone lets it by)
        self.check_timezone(spec.timezone, path, _zoneinfo_names(), empty_ok=True)
        day_or = self.boolean(spec.day_or, (*path, "day_or"))
        return {
            "cron": cron,
            "timezone": spec.timezone,
            "day_or": True if day_or is None else day_or,
        }

    def interval(self, spec: ScheduleEntry, path: tuple[Any, ...]) -> dict[str, Any]:
        interval = spec.interval or timedelta(0)
        if interval <= timedelta(0):
            shown = _show(self.entry_value((*path, "interval")))
            self.problem(
                (*path, "interval"),
                "invalid-interval",
                f"{shown} is not a positive interval",
                INTERVAL_REMEDY,
            )
        anchor = spec.anchor_date
        if anchor and not is_templated(anchor):
            parsed = _parse_anchor(anchor)
            if parsed is None:
                self.problem(
                    (*path, "anchor_date"),
                    "invalid-anchor-date",
                    f"{anchor!r} is not an ISO 8601 date-time",
                    ANCHOR_REMEDY,
                )
            else:
                anchor = _iso_anchor(parsed)
        self.check_timezone(spec.timezone, path, _zoneinfo_names(), empty_ok=True)
        return {
            "interval": interval.total_seconds(),
            "anchor_date": anchor or None,
            # Prefect derives the timezone from the anchor date, which (a parsed string,
            # or "now") never carries a named zone: it is UTC unless given.
            "timezone": "UTC" if spec.timezone is None else spec.timezone,
        }

    def rrule(self, spec: ScheduleEntry, path: tuple[Any, ...]) -> dict[str, Any] | None:
        rrule: Any = spec.rrule or ""
        tz = spec.timezone
        if not rrule:
            self.problem(
                (*path, "rrule"),
                "invalid-rrule",
                "the rrule is empty; prefect deploy fails on it",
                RRULE_REMEDY,
            )
            return None
        if not is_templated(rrule):
            try:
                loaded = json.loads(rrule)
            except ValueError:
                loaded = None
            else:  # Prefect takes the JSON of an RRuleSchedule; a timezone: key overrides its zone
                if (
                    not isinstance(loaded, dict)
                    or "rrule" not in loaded
                    or set(loaded) - {"rrule", "timezone"}
                ):
                    self.problem(
                        (*path, "rrule"),
                        "invalid-rrule",
                        f'{rrule!r} is JSON but not {{"rrule": ..., "timezone": ...}}',
                        RRULE_REMEDY,
                    )
                    return None
                rrule = loaded["rrule"]
                tz = tz or loaded.get("timezone")
            reason = _rrule_reason(rrule) if isinstance(rrule, str) else "it is not a string"
            if reason:
                self.problem(
                    (*path, "rrule"),
                    "invalid-rrule",
                    f"{_show(rrule)} is not a valid recurrence rule: {reason}",
                    RRULE_REMEDY,
                )
        tz = "UTC" if tz is None else tz
        self.check_timezone(tz, path, _pytz_names(), empty_ok=False)
        return {"rrule": rrule, "timezone": tz}

    def entry_value(self, path: tuple[Any, ...]) -> Any:
        return value_at(self.entry, path)
