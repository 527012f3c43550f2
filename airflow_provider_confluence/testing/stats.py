"""What the simulator saw: request counters and per-task timings, as an immutable snapshot."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterable

    from airflow_provider_confluence.testing.tasks import SimTask

__all__ = ["SimulatorStats", "TaskStats"]


@dataclass(frozen=True)
class TaskStats:
    """Timings of one task. Times are wall-clock (``time.time()``) seconds.

    ``finished_at`` is when the task ended (``None`` while it still runs or before its clock starts);
    ``final_status_served_at`` is when the simulator first answered a status GET showing it ended, so
    ``final_status_served_at - finished_at`` is the poller's detection lag.
    """

    task_id: str
    status_gets: int
    created_at: float
    started_at: float | None
    finished_at: float | None
    final_status_served_at: float | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "task_id": self.task_id,
            "status_gets": self.status_gets,
            "created_at": self.created_at,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "final_status_served_at": self.final_status_served_at,
        }


@dataclass(frozen=True)
class SimulatorStats:
    """A snapshot of the simulator's counters.

    ``total_requests`` counts every request to a Confluence endpoint (including 401s, 404s and faults);
    control API requests (``/_simulator/...``) are counted only in ``control_requests``.
    ``requests_by_kind`` keys: ``status``, ``list``, ``copy``, ``archive``, ``delete_page_tree``,
    ``delete_space``, ``other``. ``requests_by_task`` counts status GETs per requested task id (unknown ids
    too).
    ``responses_by_status`` counts answers by HTTP status (dropped connections have none: see
    ``faults_by_kind["reset"]``).
    """

    total_requests: int = 0
    control_requests: int = 0
    requests_by_kind: dict[str, int] = field(default_factory=dict)
    requests_by_task: dict[str, int] = field(default_factory=dict)
    responses_by_status: dict[int, int] = field(default_factory=dict)
    faults_by_kind: dict[str, int] = field(default_factory=dict)
    auth_failures: int = 0
    tasks: dict[str, TaskStats] = field(default_factory=dict)

    def status_gets(self, task_id: str) -> int:
        """Status GETs received for ``task_id`` since the last reset."""
        return self.requests_by_task.get(task_id, 0)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form (status codes become string keys)."""
        return {
            "total_requests": self.total_requests,
            "control_requests": self.control_requests,
            "requests_by_kind": dict(self.requests_by_kind),
            "requests_by_task": dict(self.requests_by_task),
            "responses_by_status": {
                str(code): count for code, count in sorted(self.responses_by_status.items())
            },
            "faults_by_kind": dict(self.faults_by_kind),
            "auth_failures": self.auth_failures,
            "tasks": {task_id: task.to_dict() for task_id, task in self.tasks.items()},
        }


class StatsRecorder:
    """Mutable counters behind :class:`SimulatorStats`; safe to read from another thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._reset_counters()

    def _reset_counters(self) -> None:
        self.total = 0
        self.control = 0
        self.by_kind: dict[str, int] = {}
        self.by_task: dict[str, int] = {}
        self.by_status: dict[int, int] = {}
        self.faults: dict[str, int] = {}
        self.auth_failures = 0

    def request(self, kind: str, task: SimTask | None = None, task_id: str | None = None) -> None:
        with self._lock:
            self.total += 1
            self.by_kind[kind] = self.by_kind.get(kind, 0) + 1
            if task_id is not None:
                self.by_task[task_id] = self.by_task.get(task_id, 0) + 1
            if task is not None:
                task.status_gets += 1

    def control_request(self) -> None:
        with self._lock:
            self.control += 1

    def response(self, status: int) -> None:
        with self._lock:
            self.by_status[status] = self.by_status.get(status, 0) + 1

    def fault(self, kind: str) -> None:
        with self._lock:
            self.faults[kind] = self.faults.get(kind, 0) + 1

    def auth_failure(self) -> None:
        with self._lock:
            self.auth_failures += 1

    def reset(self, tasks: Iterable[SimTask]) -> None:
        with self._lock:
            self._reset_counters()
            for task in tasks:
                task.status_gets = 0
                task.final_status_served_at = None

    def snapshot(self, tasks: Iterable[SimTask], now_wall: float) -> SimulatorStats:
        with self._lock:
            task_stats = {}
            for task in tasks:
                finished_at = task.finished_at
                task_stats[task.task_id] = TaskStats(
                    task_id=task.task_id,
                    status_gets=task.status_gets,
                    created_at=task.created_wall,
                    started_at=task.started_wall,
                    finished_at=finished_at if finished_at is not None and finished_at <= now_wall else None,
                    final_status_served_at=task.final_status_served_at,
                )
            return SimulatorStats(
                total_requests=self.total,
                control_requests=self.control,
                requests_by_kind=dict(self.by_kind),
                requests_by_task=dict(self.by_task),
                responses_by_status=dict(self.by_status),
                faults_by_kind=dict(self.faults),
                auth_failures=self.auth_failures,
                tasks=task_stats,
            )
