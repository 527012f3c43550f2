"""Helpers shared by the test modules."""

from __future__ import annotations

import importlib
import logging
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import structlog.testing


@contextmanager
def logs_without(caplog: pytest.LogCaptureFixture, secrets: Iterable[str]) -> Iterator[list[dict[str, Any]]]:
    """
    Capture every log entry at DEBUG and up, then check that none holds any of ``secrets``.

    Airflow's hooks, operators and triggers log through structlog (which ``caplog`` does not see),
    so both structlog's entries and stdlib records are captured and checked.
    """
    secrets = [secret for secret in secrets if secret]
    caplog.set_level(logging.DEBUG)
    with structlog.testing.capture_logs() as captured:
        yield captured
    for entry in captured:
        for secret in secrets:
            assert secret not in str(entry), entry
    for record in caplog.records:
        text = record.getMessage() + str(record.exc_text or "")
        for secret in secrets:
            assert secret not in text, text


def import_string(classpath: str) -> Any:
    """What the triggerer does with a serialized trigger's class path."""
    module, _, name = classpath.rpartition(".")
    return getattr(importlib.import_module(module), name)
