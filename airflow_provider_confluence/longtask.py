"""
The typed view of one Confluence long-task status, and the only place its rules live.

``LongTask.from_json`` turns the body of ``GET /rest/api/longtask/{id}`` (Cloud or Data Center shape)
into an immutable value; its methods answer the questions the hook, the trigger and the sensor ask:
is it done, did it succeed, which error and warning keys, how to log it, what to put in XCom.

The rules (see ``spec/README.md`` of the design):

* **done** is ``finished`` when the field is present, otherwise ``percentageComplete >= 100``;
* ``successful`` is read only once done (it is ``false`` while a task runs);
* ``errors`` may hold warnings (``WARN_*``) on a task that succeeded: warnings never fail a task
  unless the caller asks for it;
* keys sit in ``errors[].key``, in ``messages[].key``, or only inside a ``translation`` text.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from airflow_provider_confluence.exceptions import ConfluenceBadResponseError, LongTaskFailed

#: A Confluence message key: ``ERROR_COPY_PAGE``, ``WARN_RENAME_PAGE``, ``STATUS_COPIED_PAGES``...
_KEY_IN_TEXT = re.compile(r"\b((?:ERROR|WARN)_[A-Z0-9_]+)\b")
_ERROR_PREFIX = "ERROR_"
_WARNING_PREFIX = "WARN_"
#: How many of the latest messages the XCom summary keeps (a page-tree copy can log one per page).
SUMMARY_MESSAGE_LIMIT = 20


class Outcome(str, enum.Enum):
    """Where a task stands, as far as a waiting DAG is concerned."""

    RUNNING = "running"
    SUCCESS = "success"
    FAILURE = "failure"


@dataclass(frozen=True)
class Message:
    """One entry of ``messages`` or ``errors``: a translation, an optional key and its arguments."""

    translation: str = ""
    key: str | None = None
    args: tuple[Any, ...] = ()

    @property
    def effective_key(self) -> str | None:
        """The ``key`` field or, failing that, an ``ERROR_``/``WARN_`` token in the text."""
        if self.key:
            return self.key
        match = _KEY_IN_TEXT.search(self.translation)
        return match.group(1) if match else None

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.effective_key, "translation": self.translation, "args": list(self.args)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Message:
        """The inverse of :meth:`to_dict` (for trigger events)."""
        key, translation, args = data.get("key"), data.get("translation"), data.get("args")
        return cls(
            translation=translation if isinstance(translation, str) else "",
            key=key if isinstance(key, str) else None,
            args=tuple(args) if isinstance(args, list) else (),
        )

    def describe(self) -> str:
        """``KEY: translation (args: a, b)``, leaving out what is empty."""
        key = self.effective_key
        text = self.translation
        head = text
        if not text or text == key:
            head = key or ""
        elif key and key not in text:
            head = f"{key}: {text}"
        if self.args:
            head = f"{head or '(no message)'} (args: {', '.join(_arg_text(a) for a in self.args)})"
        return head or "(no message)"


@dataclass(frozen=True)
class LongTask:
    """An immutable, typed view of one long-task status. Build it with :meth:`from_json`."""

    id: str
    percentage_complete: int
    elapsed_time_ms: int = 0
    successful: bool = False
    finished: bool | None = None
    name_key: str | None = None
    name_args: tuple[Any, ...] = ()
    status: str | None = None
    messages: tuple[Message, ...] = ()
    errors: tuple[Message, ...] = ()
    additional_details: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))

    # ------------------------------------------------------------------ parsing
    @classmethod
    def from_json(cls, data: object) -> LongTask:
        """
        Parse a decoded JSON body. Tolerates both deployments' shapes and unknown fields.

        :raises ConfluenceBadResponseError: when the body is not a long-task status; the message
            names the field that is missing or of the wrong type.
        """
        if not isinstance(data, Mapping):
            raise ConfluenceBadResponseError(
                f"Expected a long-task status (a JSON object), got {_json_type(data)}."
            )
        task_id = data.get("id")
        if isinstance(task_id, bool) or not isinstance(task_id, (str, int)) or str(task_id).strip() == "":
            raise ConfluenceBadResponseError(
                "Not a long-task status: field 'id' is missing or not a non-empty string "
                f"(got {_json_type(task_id)})."
            )
        percentage = _require_int(data, "percentageComplete", low=0, high=100)
        if percentage is None:
            raise ConfluenceBadResponseError("Not a long-task status: field 'percentageComplete' is missing.")
        name = data.get("name")
        if name is not None and not isinstance(name, Mapping):
            raise ConfluenceBadResponseError(
                f"Not a long-task status: field 'name' is {_json_type(name)}, expected an object."
            )
        name = name or {}
        details = data.get("additionalDetails")
        if details is not None and not isinstance(details, Mapping):
            raise ConfluenceBadResponseError(
                f"Not a long-task status: field 'additionalDetails' is {_json_type(details)}, "
                "expected an object."
            )
        status = data.get("status")
        return cls(
            id=str(task_id),
            percentage_complete=percentage,
            elapsed_time_ms=_require_int(data, "elapsedTime", low=0) or 0,
            successful=_optional_bool(data, "successful") or False,
            finished=_optional_bool(data, "finished"),
            name_key=_optional_str(name, "key", "name.key"),
            name_args=_args(name.get("args"), "name.args"),
            status=status if isinstance(status, str) else None,
            messages=_messages(data.get("messages"), "messages"),
            errors=_messages(data.get("errors"), "errors"),
            additional_details=MappingProxyType(dict(details or {})),
        )

    # ------------------------------------------------------------------ rules
    @property
    def is_done(self) -> bool:
        """``finished`` when present, otherwise ``percentageComplete`` reached 100."""
        if self.finished is not None:
            return self.finished
        return self.percentage_complete >= 100

    @property
    def error_keys(self) -> tuple[str, ...]:
        """Every error key, in order, once: non-warning keys of ``errors``, ``ERROR_*`` of ``messages``."""
        keys = [key for key in _keys(self.errors) if not key.startswith(_WARNING_PREFIX)]
        keys += [key for key in _keys(self.messages) if key.startswith(_ERROR_PREFIX)]
        return tuple(dict.fromkeys(keys))

    @property
    def warning_keys(self) -> tuple[str, ...]:
        """Every ``WARN_*`` key found in ``errors`` or ``messages``, in order, once."""
        keys = [key for key in _keys(self.errors + self.messages) if key.startswith(_WARNING_PREFIX)]
        return tuple(dict.fromkeys(keys))

    @property
    def error_messages(self) -> tuple[Message, ...]:
        """The entries that carry an error (not warnings, not status messages)."""
        found = [m for m in self.errors if not (m.effective_key or "").startswith(_WARNING_PREFIX)]
        found += [m for m in self.messages if (m.effective_key or "").startswith(_ERROR_PREFIX)]
        return tuple(found)

    @property
    def warning_messages(self) -> tuple[Message, ...]:
        return tuple(
            m for m in self.errors + self.messages if (m.effective_key or "").startswith(_WARNING_PREFIX)
        )

    def outcome(self, *, warnings_fail: bool = False) -> Outcome:
        """RUNNING until done; then SUCCESS or FAILURE (warnings fail only when ``warnings_fail``)."""
        if not self.is_done:
            return Outcome.RUNNING
        if not self.successful or (warnings_fail and self.warning_keys):
            return Outcome.FAILURE
        return Outcome.SUCCESS

    @property
    def elapsed_seconds(self) -> float:
        return self.elapsed_time_ms / 1000.0

    def eta_seconds(self) -> float | None:
        """Seconds left, extrapolated linearly from progress so far; None without a usable signal."""
        if self.is_done or not 0 < self.percentage_complete < 100 or self.elapsed_time_ms <= 0:
            return None
        return self.elapsed_seconds * (100 - self.percentage_complete) / self.percentage_complete

    @property
    def display_name(self) -> str:
        """A readable name: ``Remove space`` out of ``com.atlassian...RemoveSpaceAction.action.name``."""
        if not self.name_key:
            return "long task"
        parts = [p for p in self.name_key.split(".") if p and p not in {"action", "name", "desc", "task"}]
        if not parts:
            return self.name_key
        if parts[-1].islower():  # a dotted key such as copy.page.hierarchy
            return " ".join(parts[-3:]).capitalize()
        words = re.findall(
            r"[A-Z]+(?![a-z])|[A-Z]?[a-z0-9]+", parts[-1].removesuffix("Action").removesuffix("Task")
        )
        return " ".join(words).capitalize() if words else parts[-1]

    @property
    def latest_message(self) -> str | None:
        return self.messages[-1].describe() if self.messages else None

    # ------------------------------------------------------------------ presentation
    def describe(self) -> str:
        """One line for the task log: name, id, percent, elapsed, ETA or outcome, latest message."""
        text = (
            f"Confluence task {self.id} ({self.display_name}): {self.percentage_complete}% "
            f"after {format_duration(self.elapsed_seconds)}"
        )
        if self.is_done:
            text += ", succeeded" if self.successful else ", failed"
        else:
            eta = self.eta_seconds()
            if eta is not None:
                text += f", about {format_duration(eta)} left"
        if self.latest_message:
            text += f" - {self.latest_message}"
        return text

    def failure_message(self) -> str:
        """What failed, on which task, after how long, and every error key with its text and args."""
        details = [m.describe() for m in self.error_messages]
        if not details and not self.successful:
            details = [m.describe() for m in self.messages[-3:]]
        if self.successful and self.warning_keys:  # failed only because warnings were made fatal
            details = [m.describe() for m in self.warning_messages]
        keys = self.error_keys or (self.warning_keys if self.successful else ())
        head = (
            f"Confluence task {self.id} ({self.display_name}) failed after "
            f"{format_duration(self.elapsed_seconds)} at {self.percentage_complete}%"
        )
        head += f" with error keys {', '.join(keys)}" if keys else " without an error key"
        return head + (". Details: " + "; ".join(details) if details else ".")

    def to_failure(self) -> LongTaskFailed:
        """The exception that reports this task's failure."""
        messages = self.error_messages or (self.warning_messages if self.successful else ())
        keys = self.error_keys or (self.warning_keys if self.successful else ())
        return LongTaskFailed(
            self.failure_message(), task_id=self.id, error_keys=keys, errors=messages, task=self
        )

    def summary(self) -> dict[str, Any]:
        """A JSON-safe summary of the status, for XCom and trigger events."""
        return {
            "id": self.id,
            "name": self.name_key,
            "name_args": list(self.name_args),
            "status": self.status,
            "percentage_complete": self.percentage_complete,
            "elapsed_time_ms": self.elapsed_time_ms,
            "finished": self.is_done,
            "successful": self.successful,
            "error_keys": list(self.error_keys),
            "warning_keys": list(self.warning_keys),
            "errors": [m.to_dict() for m in self.errors],
            "messages": [m.to_dict() for m in self.messages[-SUMMARY_MESSAGE_LIMIT:]],
            "additional_details": _json_safe(dict(self.additional_details)),
        }


def format_duration(seconds: float) -> str:
    """``950 ms``, ``12.3 s``, ``4 min 05 s``, ``2 h 03 min``."""
    if seconds < 1:
        return f"{round(seconds * 1000)} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


# ---------------------------------------------------------------------- helpers
def _keys(messages: tuple[Message, ...]) -> list[str]:
    return [key for key in (m.effective_key for m in messages) if key]


def _json_type(value: object) -> str:
    if value is None:
        return "null / missing"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, (list, tuple)):
        return "a JSON list"
    if isinstance(value, Mapping):
        return "a JSON object"
    return type(value).__name__


def _require_int(data: Mapping[str, Any], name: str, *, low: int, high: int | None = None) -> int | None:
    value = data.get(name)
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfluenceBadResponseError(
            f"Not a long-task status: field '{name}' is {_json_type(value)}, expected an integer."
        )
    if value < low or (high is not None and value > high):
        bounds = f"{low}..{high}" if high is not None else f">= {low}"
        raise ConfluenceBadResponseError(
            f"Not a long-task status: field '{name}' is {value}, outside {bounds}."
        )
    return value


def _optional_bool(data: Mapping[str, Any], name: str) -> bool | None:
    value = data.get(name)
    if value is None or isinstance(value, bool):
        return value
    raise ConfluenceBadResponseError(
        f"Not a long-task status: field '{name}' is {_json_type(value)}, expected true or false."
    )


def _optional_str(data: Mapping[str, Any], name: str, where: str) -> str | None:
    value = data.get(name)
    if value is None or isinstance(value, str):
        return value
    raise ConfluenceBadResponseError(
        f"Not a long-task status: field '{where}' is {_json_type(value)}, expected a string."
    )


def _args(value: object, where: str) -> tuple[Any, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise ConfluenceBadResponseError(
            f"Not a long-task status: field '{where}' is {_json_type(value)}, expected a list."
        )
    return tuple(_json_safe(v) for v in value)


def _messages(value: object, where: str) -> tuple[Message, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise ConfluenceBadResponseError(
            f"Not a long-task status: field '{where}' is {_json_type(value)}, expected a list."
        )
    parsed = []
    for index, item in enumerate(value):
        if isinstance(item, str):  # seen in older payloads: a bare text
            parsed.append(Message(translation=item))
            continue
        if not isinstance(item, Mapping):
            raise ConfluenceBadResponseError(
                f"Not a long-task status: '{where}[{index}]' is {_json_type(item)}, expected an object."
            )
        # Confluence's error bodies nest the message: {"message": {"translation": ..., "args": ...}}
        nested = item.get("message")
        inner: Mapping[str, Any] = nested if isinstance(nested, Mapping) else item
        translation = inner.get("translation")
        parsed.append(
            Message(
                translation=translation if isinstance(translation, str) else "",
                key=_optional_str(inner, "key", f"{where}[{index}].key") or None,
                args=_args(inner.get("args"), f"{where}[{index}].args"),
            )
        )
    return tuple(parsed)


def _json_safe(value: Any) -> Any:
    """Plain JSON types only (str, int, float, bool, None, list, dict with str keys)."""
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return str(value)


def _arg_text(arg: Any) -> str:
    if isinstance(arg, Mapping):
        for name in ("name", "title", "value", "id"):
            if name in arg:
                return str(arg[name])
    return str(arg)
