"""
Helpers of the fault-injection soak (``tests/test_soak.py``): log capture at every level, the canary
evidence (every text a secret must not appear in), and the figures of the report.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import re
import statistics
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import structlog
import structlog.testing

CANARY = "CANARY-SOAK-9d1e"
EMAIL = "soak-canary@example.com"
#: What a basic-auth header carries: base64 of ``email:token``. It must leak no more than the token.
CANARY_B64 = base64.b64encode(f"{EMAIL}:{CANARY}".encode()).decode("ascii")
NEEDLES = (CANARY, CANARY_B64)

#: structlog logger names (Airflow's per-logger levels are matched by prefix).
STRUCTLOG_PREFIXES = (
    "airflow_provider_confluence",  # the trigger's (named after its class path)
    "airflow.task.hooks.airflow_provider_confluence",  # the hook's
)
#: stdlib loggers set to DEBUG (caplog); the root logger is set to DEBUG too.
STDLIB_LOGGERS = (
    "airflow_provider_confluence",
    "airflow_provider_confluence.core",
    "airflow_provider_confluence.triggers.longtask.LongTaskTrigger",
    "airflow.task.hooks.airflow_provider_confluence.hooks.confluence.ConfluenceHook",
    "aiohttp",
    "asyncio",
)
#: ``<message> Retry 2 of 8 in 1.3 s.``: the hook's retry line.
RETRY_LINE = re.compile(r"Retry (\d+) of (\d+) in ([0-9.]+) s\.")


def text_of(value: Any) -> str:
    """Everything a value could show: its JSON form when it has one, else its repr and str."""
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, default=repr, sort_keys=True)
    except (TypeError, ValueError):
        return f"{value!r} {value}"


@dataclass
class Evidence:
    """Every text in which the canary token (or its base64 form) must not appear, labelled by source."""

    items: list[tuple[str, str]] = field(default_factory=list)

    def add(self, source: str, value: Any) -> None:
        self.items.append((source, text_of(value)))

    def add_exception(self, source: str, error: BaseException) -> None:
        self.add(source, f"{type(error).__name__}: {error} | {error!r} | args={error.args!r}")
        for name in ("message", "url"):
            if getattr(error, name, None) is not None:
                self.add(f"{source}.{name}", str(getattr(error, name)))

    def leaks(self, needles: Iterable[str] = NEEDLES) -> list[tuple[str, str]]:
        found = []
        for source, text in self.items:
            for needle in needles:
                if needle in text:
                    at = text.index(needle)
                    found.append((source, text[max(0, at - 80) : at + len(needle) + 40]))
        return found

    def count(self, prefix: str) -> int:
        return sum(1 for source, _ in self.items if source.startswith(prefix))


@dataclass
class CapturedLogs:
    """What every logger said while the capture ran: structlog entries and stdlib records."""

    structlog_entries: list[dict[str, Any]]
    caplog: pytest.LogCaptureFixture

    @property
    def stdlib_records(self) -> list[logging.LogRecord]:
        return list(self.caplog.records)

    def messages(self) -> list[str]:
        """Rendered messages of both kinds (structlog's ``event`` is already %-formatted)."""
        texts = [str(entry.get("event", "")) for entry in self.structlog_entries]
        texts += [record.getMessage() for record in self.stdlib_records]
        return texts

    def add_to(self, evidence: Evidence) -> None:
        for entry in self.structlog_entries:
            evidence.add(f"log.structlog.{entry.get('log_level', '?')}", repr(entry))
        for record in self.stdlib_records:
            evidence.add(f"log.stdlib.{record.levelname.lower()}", _record_text(record))

    def by_level(self) -> dict[str, int]:
        levels: dict[str, int] = {}
        for entry in self.structlog_entries:
            level = str(entry.get("log_level", "?"))
            levels[level] = levels.get(level, 0) + 1
        for record in self.stdlib_records:
            level = record.levelname.lower()
            levels[level] = levels.get(level, 0) + 1
        return levels


def _record_text(record: logging.LogRecord) -> str:
    try:
        message = record.getMessage()
    except Exception as error:  # a record whose args do not fit its format still must not leak
        message = f"{record.msg!r} % {record.args!r} ({error})"
    return " | ".join(
        [record.name, message, repr(record.args), str(record.exc_text or ""), str(record.stack_info or "")]
    )


@contextlib.contextmanager
def capture_all_logs(caplog: pytest.LogCaptureFixture) -> Iterator[CapturedLogs]:
    """
    Capture every log line at DEBUG and above.

    ``hook.log`` and ``trigger.log`` are Airflow's structlog loggers: they bypass stdlib logging (and
    ``caplog``), and Airflow filters them per logger name before any processor runs. So the per-logger
    level of the provider's names is lowered to DEBUG and structlog's own capture records them (with
    %-style arguments formatted in, their raw arguments kept). Loggers are bound lazily on first use, so
    objects created inside the block get the DEBUG level. stdlib loggers go to ``caplog`` at DEBUG.
    """
    caplog.set_level(logging.DEBUG)
    for name in STDLIB_LOGGERS:
        caplog.set_level(logging.DEBUG, logger=name)
    levels: Any = None
    saved: dict[str, Any] = {}
    try:
        from airflow._shared.logging import structlog as airflow_structlog

        levels = airflow_structlog.PER_LOGGER_LEVELS
    except (ImportError, AttributeError):  # another Airflow layout: capture at its configured level
        levels = None
    if levels is not None:
        for prefix in STRUCTLOG_PREFIXES:
            saved[prefix] = levels.get(prefix)
            levels[prefix] = logging.DEBUG
    formatter = structlog.stdlib.PositionalArgumentsFormatter(remove_positional_args=False)
    try:
        with structlog.testing.capture_logs(processors=[formatter]) as entries:
            yield CapturedLogs(entries, caplog)
    finally:
        if levels is not None:
            for prefix, old in saved.items():
                if old is None:
                    with contextlib.suppress(KeyError):
                        del levels[prefix]
                else:
                    levels[prefix] = old


def retry_waits(messages: Iterable[str]) -> list[tuple[int, float, str]]:
    """``(retry number, seconds, message)`` of every retry line the hook logged."""
    waits = []
    for message in messages:
        match = RETRY_LINE.search(message)
        if match:
            waits.append((int(match.group(1)), float(match.group(3)), message))
    return waits


def spread(values: Iterable[float]) -> dict[str, float]:
    data = sorted(values)
    if not data:
        return {"mean": 0.0, "median": 0.0, "max": 0.0, "min": 0.0}
    return {
        "mean": statistics.fmean(data),
        "median": statistics.median(data),
        "max": data[-1],
        "min": data[0],
    }


def markdown_table(rows: Iterable[tuple[str, Any]], header: tuple[str, str] = ("figure", "value")) -> str:
    lines = [f"| {header[0]} | {header[1]} |", "|---|---|"]
    lines += [f"| {name} | {value} |" for name, value in rows]
    return "\n".join(lines)
