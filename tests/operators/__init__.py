"""Tests of the operators that start a Confluence long task; small plain fakes of Airflow's context."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class FakeTaskInstance:
    """Records ``xcom_push`` calls, and what ``on_push`` observed at that moment (e.g. status GETs so far)."""

    def __init__(self, on_push: Callable[[Any], Any] | None = None) -> None:
        self.pushed: list[tuple[str, Any]] = []
        self.observed_at_push: list[Any] = []
        self._on_push = on_push

    def xcom_push(self, key: str, value: Any) -> None:
        self.pushed.append((key, value))
        if self._on_push is not None:
            self.observed_at_push.append(self._on_push(value))


class DictStateStore:
    """A ``task_state_store`` kept in a dict: what one try sets, the next try gets."""

    def __init__(self, **initial: Any) -> None:
        self.data: dict[str, Any] = dict(initial)
        self.sets: list[tuple[str, Any]] = []

    def get(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)

    def set(self, key: str, value: Any) -> None:
        if value is None:
            raise ValueError("Cannot set value as None")  # as Airflow's accessor
        self.sets.append((key, value))
        self.data[key] = value


def make_context(
    ti: FakeTaskInstance | None = None, store: DictStateStore | None = None, *, with_store: bool = True
) -> dict[str, Any]:
    """A task context with a fake ``ti`` and (unless ``with_store=False``) a ``task_state_store``."""
    context: dict[str, Any] = {"ti": ti or FakeTaskInstance()}
    if with_store:
        context["task_state_store"] = store if store is not None else DictStateStore()
    return context
