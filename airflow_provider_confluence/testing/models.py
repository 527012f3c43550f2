"""The simulator's vocabulary: what a task does (:class:`TaskSpec`) and what goes wrong (:class:`Fault`).

Both are frozen dataclasses that validate themselves on construction and round-trip through JSON
(``to_dict`` / ``from_dict``), so the same objects serve Python callers and the HTTP control API.
Bad input raises :class:`ValueError` with a message that names the field and what is allowed.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, cast

__all__ = [
    "CURVES",
    "DEFAULT_ERROR_KEYS",
    "DEFAULT_NAME_KEY",
    "DEFAULT_WARNING_KEYS",
    "FAULT_ENDPOINTS",
    "FAULT_KINDS",
    "KEY_PLACEMENTS",
    "OUTCOMES",
    "SHAPES",
    "Curve",
    "Fault",
    "FaultEndpoint",
    "FaultKind",
    "KeyPlacement",
    "Outcome",
    "Shape",
    "TaskSpec",
]

Curve = Literal["linear", "stepped", "stall"]
Outcome = Literal["success", "failure", "warnings"]
Shape = Literal["cloud", "datacenter"]
KeyPlacement = Literal["errors", "messages", "translation"]
FaultKind = Literal[
    "429",
    "403",
    "500",
    "502",
    "503",
    "504",
    "html",
    "slow",
    "reset",
    "redirect",
    "empty",
    "truncated",
    "list",
]
FaultEndpoint = Literal["status", "list", "start", "any"]

CURVES: frozenset[str] = frozenset({"linear", "stepped", "stall"})
OUTCOMES: frozenset[str] = frozenset({"success", "failure", "warnings"})
SHAPES: frozenset[str] = frozenset({"cloud", "datacenter"})
KEY_PLACEMENTS: frozenset[str] = frozenset({"errors", "messages", "translation"})
FAULT_KINDS: frozenset[str] = frozenset(
    {
        "429",
        "403",
        "500",
        "502",
        "503",
        "504",
        "html",
        "slow",
        "reset",
        "redirect",
        "empty",
        "truncated",
        "list",
    }
)
FAULT_ENDPOINTS: frozenset[str] = frozenset({"status", "list", "start", "any"})

DEFAULT_ERROR_KEYS: tuple[str, ...] = ("ERROR_COPY_PAGE",)
DEFAULT_WARNING_KEYS: tuple[str, ...] = ("WARN_IGNORE_COPY_ATTACHMENT",)
DEFAULT_NAME_KEY = "com.atlassian.confluence.pages.actions.CopyPageHierarchyAction.action.name"

# Largest values the simulator accepts, so that a typo cannot park a task for a year.
_MAX_SECONDS = 86_400.0
_MAX_PAGES = 100_000
_MAX_ID_LENGTH = 255


def _fail(owner: str, name: str, problem: str) -> ValueError:
    return ValueError(f"{owner}.{name}: {problem}")


def _check_number(owner: str, name: str, value: object, *, maximum: float = _MAX_SECONDS) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _fail(owner, name, f"expected a number of seconds, got {type(value).__name__} {value!r}")
    number = float(value)
    if not math.isfinite(number) or number < 0:
        raise _fail(owner, name, f"must be a finite number >= 0, got {value!r}")
    if number > maximum:
        raise _fail(owner, name, f"must be at most {maximum:g}, got {value!r}")
    return number


def _check_int(owner: str, name: str, value: object, *, minimum: int, maximum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _fail(owner, name, f"expected an integer, got {type(value).__name__} {value!r}")
    if not minimum <= value <= maximum:
        raise _fail(owner, name, f"must be between {minimum} and {maximum}, got {value!r}")
    return value


def _check_choice(owner: str, name: str, value: object, choices: frozenset[str]) -> str:
    if not isinstance(value, str) or value not in choices:
        allowed = ", ".join(repr(choice) for choice in sorted(choices))
        raise _fail(owner, name, f"must be one of {allowed}, got {value!r}")
    return value


def _check_str(owner: str, name: str, value: object, *, allow_empty: bool = False) -> str:
    if not isinstance(value, str):
        raise _fail(owner, name, f"expected a string, got {type(value).__name__} {value!r}")
    if not allow_empty and not value.strip():
        raise _fail(owner, name, "must not be empty")
    return value


def _check_optional_str(owner: str, name: str, value: object) -> str | None:
    return None if value is None else _check_str(owner, name, value)


def _check_str_tuple(
    owner: str, name: str, value: object, *, allow_empty_items: bool = False
) -> tuple[str, ...]:
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
        raise _fail(owner, name, f"expected a list of strings, got {type(value).__name__} {value!r}")
    items = tuple(value)
    for item in items:
        if not isinstance(item, str) or (not allow_empty_items and not item.strip()):
            raise _fail(owner, name, f"every item must be a non-empty string, got {item!r}")
    return items


def _check_header_value(owner: str, name: str, value: object) -> str | None:
    if value is None:
        return None
    text = _check_str(owner, name, value, allow_empty=True)
    if len(text) > 200 or any(not ch.isprintable() for ch in text):
        raise _fail(owner, name, f"must be a short printable header value, got {value!r}")
    return text


def _check_task_id(owner: str, name: str, value: object) -> str | None:
    if value is None:
        return None
    task_id = _check_str(owner, name, value)
    if len(task_id) > _MAX_ID_LENGTH:
        raise _fail(owner, name, f"must be at most {_MAX_ID_LENGTH} characters long")
    if task_id != task_id.strip() or any(
        ch in "/?#" or ch.isspace() or not ch.isprintable() for ch in task_id
    ):
        raise _fail(
            owner, name, f"must be one URL path segment without '/', '?', '#' or whitespace, got {value!r}"
        )
    return task_id


def _check_details(owner: str, name: str, value: object) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise _fail(owner, name, f"expected a JSON object, got {type(value).__name__} {value!r}")
    details: dict[str, Any] = {}
    for key, item in value.items():
        if not isinstance(key, str):
            raise _fail(owner, name, f"keys must be strings, got {key!r}")
        details[key] = item
    try:
        json.dumps(details, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise _fail(owner, name, f"must be JSON-serialisable: {exc}") from None
    # Keep the documented fields to the types of the OpenAPI description, so responses stay conformant.
    if "destinationId" in details and not isinstance(details["destinationId"], (str, type(None))):
        raise _fail(owner, name, "destinationId must be a string or null")
    if "destinationUrl" in details and not isinstance(details["destinationUrl"], str):
        raise _fail(owner, name, "destinationUrl must be a string")
    if "totalPageNeedToCopy" in details:
        total = details["totalPageNeedToCopy"]
        if isinstance(total, bool) or not isinstance(total, int):
            raise _fail(owner, name, "totalPageNeedToCopy must be an integer")
    return details


def _from_mapping(cls_name: str, data: object, allowed: frozenset[str]) -> Mapping[str, Any]:
    if not isinstance(data, Mapping):
        raise ValueError(f"{cls_name}: expected a JSON object, got {type(data).__name__}")
    unknown = sorted(str(key) for key in data if key not in allowed)
    if unknown:
        raise ValueError(
            f"{cls_name}: unknown field(s) {', '.join(unknown)}; "
            f"allowed fields are {', '.join(sorted(allowed))}"
        )
    return cast("Mapping[str, Any]", data)


@dataclass(frozen=True)
class TaskSpec:
    """What one simulated long task does over its life.

    - ``duration``: seconds from start to end (``0`` = already finished).
    - ``curve``: ``linear``; ``stepped`` (25 % steps); ``stall`` (sticks at 10 %, jumps to 100 % at the end).
    - ``outcome``: ``success``; ``failure`` (``successful`` false, error keys); ``warnings`` (successful, with
      ``WARN_*`` entries).
    - ``error_keys`` / ``warning_keys``: keys of the failure / warning entries; ``None`` means the defaults
      (``ERROR_COPY_PAGE`` / ``WARN_IGNORE_COPY_ATTACHMENT``), ``[]`` means none at all.
    - ``error_args``: arguments (e.g. page titles) attached to every error and warning entry.
    - ``shape``: ``cloud`` (has ``finished`` and ``status``) or ``datacenter`` (no ``finished``: done at
      100 %).
    - ``key_placement``: where the keys go: ``errors`` (``errors[].key``), ``messages``
      (``messages[].key``) or ``translation`` (entries in ``messages`` without any key field; the key
      only starts the translation text).
    - ``name_key``: the task's ``name.key``.
    - ``additional_details``: the ``additionalDetails`` object (e.g. ``destinationUrl``).
    - ``not_found_for``: seconds after creation during which the task answers 404.
    - ``start_on_first_poll``: the task's clock starts at its first successful status GET.
    - ``stop_at_percent``: for ``failure`` only: the task stops at this percentage (< 100) at ``duration``;
      its
      ``elapsedTime`` stops growing. On Data Center it never reaches 100 % (a "stopped clock").
    - ``task_id``: a fixed id; otherwise the simulator hands out opaque numeric ids.
    - ``pages``: when > 0, progress messages read "Copied n of m pages" (``STATUS_COPYING_PAGES``).
    - ``status_message`` / ``status_key``: the progress message shown otherwise, and its optional key.
    """

    duration: float = 1.0
    curve: Curve = "linear"
    outcome: Outcome = "success"
    error_keys: tuple[str, ...] | None = None
    warning_keys: tuple[str, ...] | None = None
    error_args: tuple[str, ...] = ()
    shape: Shape = "cloud"
    key_placement: KeyPlacement = "errors"
    name_key: str = DEFAULT_NAME_KEY
    additional_details: dict[str, Any] = field(default_factory=dict, hash=False)
    not_found_for: float = 0.0
    start_on_first_poll: bool = False
    stop_at_percent: int | None = None
    task_id: str | None = None
    pages: int = 0
    status_message: str = "Task in progress"
    status_key: str | None = None

    def __post_init__(self) -> None:
        owner = "TaskSpec"
        values: dict[str, object] = {
            "duration": _check_number(owner, "duration", self.duration),
            "curve": _check_choice(owner, "curve", self.curve, CURVES),
            "outcome": _check_choice(owner, "outcome", self.outcome, OUTCOMES),
            "error_keys": None
            if self.error_keys is None
            else _check_str_tuple(owner, "error_keys", self.error_keys),
            "warning_keys": None
            if self.warning_keys is None
            else _check_str_tuple(owner, "warning_keys", self.warning_keys),
            "error_args": _check_str_tuple(owner, "error_args", self.error_args, allow_empty_items=True),
            "shape": _check_choice(owner, "shape", self.shape, SHAPES),
            "key_placement": _check_choice(owner, "key_placement", self.key_placement, KEY_PLACEMENTS),
            "name_key": _check_str(owner, "name_key", self.name_key),
            "additional_details": _check_details(owner, "additional_details", self.additional_details),
            "not_found_for": _check_number(owner, "not_found_for", self.not_found_for),
            "task_id": _check_task_id(owner, "task_id", self.task_id),
            "pages": _check_int(owner, "pages", self.pages, minimum=0, maximum=_MAX_PAGES),
            "status_message": _check_str(owner, "status_message", self.status_message),
            "status_key": _check_optional_str(owner, "status_key", self.status_key),
        }
        if not isinstance(self.start_on_first_poll, bool):
            raise _fail(
                owner, "start_on_first_poll", f"expected true or false, got {self.start_on_first_poll!r}"
            )
        if self.stop_at_percent is not None:
            _check_int(owner, "stop_at_percent", self.stop_at_percent, minimum=0, maximum=99)
            if self.outcome != "failure":
                raise _fail(
                    owner, "stop_at_percent", "only a failing task can stop early (set outcome='failure')"
                )
        for name, value in values.items():
            object.__setattr__(self, name, value)

    @property
    def effective_error_keys(self) -> tuple[str, ...]:
        """The keys of the failure entries (only used when ``outcome`` is ``failure``)."""
        return DEFAULT_ERROR_KEYS if self.error_keys is None else self.error_keys

    @property
    def effective_warning_keys(self) -> tuple[str, ...]:
        """The keys of the warning entries (only used when ``outcome`` is ``warnings``)."""
        return DEFAULT_WARNING_KEYS if self.warning_keys is None else self.warning_keys

    def replace(self, **changes: Any) -> TaskSpec:
        """A copy with some fields changed (validated like any other ``TaskSpec``)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict that :meth:`from_dict` turns back into an equal ``TaskSpec``."""
        return {
            "duration": self.duration,
            "curve": self.curve,
            "outcome": self.outcome,
            "error_keys": None if self.error_keys is None else list(self.error_keys),
            "warning_keys": None if self.warning_keys is None else list(self.warning_keys),
            "error_args": list(self.error_args),
            "shape": self.shape,
            "key_placement": self.key_placement,
            "name_key": self.name_key,
            "additional_details": dict(self.additional_details),
            "not_found_for": self.not_found_for,
            "start_on_first_poll": self.start_on_first_poll,
            "stop_at_percent": self.stop_at_percent,
            "task_id": self.task_id,
            "pages": self.pages,
            "status_message": self.status_message,
            "status_key": self.status_key,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TaskSpec:
        """Build a spec from a JSON object; unknown fields and wrong types raise :class:`ValueError`."""
        fields = _from_mapping("TaskSpec", data, _TASK_SPEC_FIELDS)
        return cls(**fields)


@dataclass(frozen=True)
class Fault:
    """A misbehaviour injected into the next matching requests.

    - ``kind``: ``429`` (``Retry-After``, ``X-RateLimit-Remaining: 0``), ``403``, ``500``, ``502``,
      ``503`` (with ``Retry-After`` when ``retry_after`` is set), ``504``, ``html`` (a 200 SSO login page),
      ``slow`` (answers normally after ``delay`` seconds), ``reset`` (closes the connection without an
      answer), ``redirect`` (302 to an SSO host), ``empty`` (200 with no body), ``truncated`` (200 with
      cut-off JSON), ``list`` (200 with a JSON list).
      Note: aiohttp clients retry an idempotent request once when the connection drops, so an aiohttp
      poller only sees a ``reset`` when it comes twice in a row (``times=2``).
    - ``times``: how many matching requests get the fault.
    - ``task_id``: only status GETs of that task match; ``None``: any request of ``endpoint``.
    - ``after``: let this many matching requests through first.
    - ``retry_after``: the ``Retry-After`` value as sent (seconds, an HTTP date, or garbage); for ``429`` it
      defaults to ``"1"``.
    - ``delay``: seconds to wait for ``slow``.
    - ``endpoint``: which requests match: ``status`` (longtask status GETs, the default), ``list`` (the task
      list), ``start`` (the four operations that start a task) or ``any`` Confluence endpoint.
    """

    kind: FaultKind
    times: int = 1
    task_id: str | None = None
    after: int = 0
    retry_after: str | None = None
    delay: float = 1.0
    endpoint: FaultEndpoint = "status"

    def __post_init__(self) -> None:
        owner = "Fault"
        kind: object = self.kind
        if isinstance(kind, int) and not isinstance(kind, bool):
            kind = str(kind)  # Fault(429) is an easy slip; the kinds are strings.
        values: dict[str, object] = {
            "kind": _check_choice(owner, "kind", kind, FAULT_KINDS),
            "times": _check_int(owner, "times", self.times, minimum=1, maximum=10_000_000),
            "task_id": _check_task_id(owner, "task_id", self.task_id),
            "after": _check_int(owner, "after", self.after, minimum=0, maximum=10_000_000),
            "retry_after": _check_header_value(owner, "retry_after", self.retry_after),
            "delay": _check_number(owner, "delay", self.delay, maximum=600.0),
            "endpoint": _check_choice(owner, "endpoint", self.endpoint, FAULT_ENDPOINTS),
        }
        if self.task_id is not None and self.endpoint not in ("status", "any"):
            raise _fail(owner, "task_id", "only status requests name a task; use endpoint='status'")
        for name, value in values.items():
            object.__setattr__(self, name, value)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict that :meth:`from_dict` turns back into an equal ``Fault``."""
        return {
            "kind": self.kind,
            "times": self.times,
            "task_id": self.task_id,
            "after": self.after,
            "retry_after": self.retry_after,
            "delay": self.delay,
            "endpoint": self.endpoint,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Fault:
        """Build a fault from a JSON object; unknown fields and wrong types raise :class:`ValueError`."""
        fields = _from_mapping("Fault", data, _FAULT_FIELDS)
        if "kind" not in fields:
            raise ValueError("Fault.kind: required (one of " + ", ".join(sorted(FAULT_KINDS)) + ")")
        return cls(**fields)


_TASK_SPEC_FIELDS: frozenset[str] = frozenset(f.name for f in dataclasses.fields(TaskSpec))
_FAULT_FIELDS: frozenset[str] = frozenset(f.name for f in dataclasses.fields(Fault))
