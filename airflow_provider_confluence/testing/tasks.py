"""One simulated long task: its clock, its progress curve and the JSON it answers with.

Everything here is pure given the time passed in, so the server stays a thin shell around it.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_provider_confluence.testing.models import TaskSpec

__all__ = ["SimTask", "translate"]

# Human texts for the documented status keys; "{0}" takes the first of the task's ``error_args``.
_TRANSLATIONS: dict[str, str] = {
    "ERROR_UNKNOWN": "An unknown error occurred",
    "ERROR_LOCK_FAILED": "Could not get the lock on the destination space '{0}'",
    "ERROR_RELINK": "Could not relink the pages and attachments of '{0}'",
    "ERROR_COPY_PAGE": "Could not copy page '{0}'",
    "WARN_RENAME_PAGE": "Page '{0}' was renamed during the copy",
    "WARN_IGNORE_COPY_PERMISSION": "Could not copy the permissions of page '{0}'",
    "WARN_IGNORE_COPY_ATTACHMENT": "Could not copy an attachment of page '{0}'",
    "WARN_IGNORE_DELETE_PAGE": "Did not delete page '{0}', which was not part of the request",
    "WARN_IGNORE_VIEW_RESTRICTED": "The view restrictions of page '{0}' were changed",
    "WARN_IGNORE_EDIT_RESTRICTED": "The edit restrictions of page '{0}' were changed",
}

_DC_DEFAULT_MESSAGE_KEY = "UNKNOWN_STATUS"


def translate(key: str, args: tuple[str, ...]) -> str:
    """The human text Confluence would show for ``key`` (unknown keys get a readable fallback)."""
    template = _TRANSLATIONS.get(key)
    if template is None:
        return key.replace("_", " ").capitalize()
    return template.replace("{0}", args[0] if args else "untitled")


def _dumps(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


class SimTask:
    """The live state of one simulated task. Times are ``time.monotonic()`` unless named ``*_wall``."""

    __slots__ = (
        "_final_bodies",
        "_final_status",
        "created_mono",
        "created_wall",
        "final_status_served_at",
        "operation",
        "spec",
        "started_mono",
        "started_wall",
        "status_gets",
        "task_id",
    )

    def __init__(self, task_id: str, spec: TaskSpec, *, operation: str | None = None) -> None:
        self.task_id = task_id
        self.spec = spec
        self.operation = operation
        self.created_mono = time.monotonic()
        self.created_wall = time.time()
        self.started_mono: float | None = None
        self.started_wall: float | None = None
        self.status_gets = 0
        self.final_status_served_at: float | None = None
        self._final_status: dict[str, Any] | None = None
        self._final_bodies: dict[str, bytes] = {}
        if not spec.start_on_first_poll:
            self.start()

    # -- clock -------------------------------------------------------------------------------------

    def start(self, now: float | None = None) -> None:
        """Start the task's clock at ``now`` (``time.monotonic()``; no-op when it already runs)."""
        if self.started_mono is None:
            mono = time.monotonic()
            self.started_mono = mono if now is None else now
            self.started_wall = time.time() - (mono - self.started_mono)

    def visible(self, now: float) -> bool:
        """False while the task is inside its ``not_found_for`` window (it answers 404 then)."""
        return now - self.created_mono >= self.spec.not_found_for

    def ended(self, now: float) -> bool:
        """True once the task has stopped: succeeded, failed, or stopped early."""
        return self.started_mono is not None and now - self.started_mono >= self.spec.duration

    @property
    def finished_at(self) -> float | None:
        """Wall-clock time at which the task ends (or ended); ``None`` before its clock starts."""
        if self.started_wall is None:
            return None
        return self.started_wall + self.spec.duration

    def progress(self, now: float) -> tuple[int, int, bool]:
        """``(percentageComplete, elapsedTime in ms, ended)`` at monotonic time ``now``."""
        spec = self.spec
        if self.started_mono is None:
            return 0, 0, False
        running_for = max(0.0, now - self.started_mono)
        if running_for >= spec.duration:
            final = spec.stop_at_percent if spec.stop_at_percent is not None else 100
            return final, round(spec.duration * 1000), True
        fraction = running_for / spec.duration
        if spec.curve == "stepped":
            percent = 25 * int(fraction * 4)
        elif spec.curve == "stall":
            percent = min(int(fraction * 100), 10)
        else:
            percent = int(fraction * 100)
        percent = min(percent, 99)
        if spec.stop_at_percent is not None:
            percent = min(percent, spec.stop_at_percent)
        return percent, int(running_for * 1000), False

    # -- rendering ---------------------------------------------------------------------------------

    def status(self, now: float) -> dict[str, Any]:
        """The task as a ``LongTaskStatus`` (no ``_links``), as listed by ``GET /rest/api/longtask``.

        The returned dict may be shared (a finished task's status is cached): do not mutate it.
        """
        if self._final_status is not None:
            return self._final_status
        percent, elapsed, ended = self.progress(now)
        body = self._render(percent, elapsed, ended)
        if ended:
            self._final_status = body
        return body

    def status_body(self, now: float, links: dict[str, str]) -> bytes:
        """The JSON bytes of ``GET /rest/api/longtask/{id}`` (a ``LongTaskStatusWithLinks``)."""
        if self._final_status is not None:
            cached = self._final_bodies.get(links["base"])
            if cached is None:
                cached = self._final_bodies[links["base"]] = _dumps({**self._final_status, "_links": links})
            return cached
        return _dumps({**self.status(now), "_links": links})

    def _render(self, percent: int, elapsed: int, ended: bool) -> dict[str, Any]:
        spec = self.spec
        cloud = spec.shape == "cloud"
        failed = ended and spec.outcome == "failure"
        messages: list[dict[str, Any]] = [self._progress_message(percent, ended, failed)]
        entries: list[dict[str, Any]] = []
        if ended and spec.outcome == "failure":
            entries = [self._entry(key) for key in spec.effective_error_keys]
        elif ended and spec.outcome == "warnings":
            entries = [self._entry(key) for key in spec.effective_warning_keys]
        errors: list[dict[str, Any]] = []
        if spec.key_placement == "errors":
            errors = entries
        else:
            messages.extend(entries)
        body: dict[str, Any] = {
            "id": self.task_id,
            "name": {"key": spec.name_key, "args": []},
            "elapsedTime": elapsed,
            "percentageComplete": percent,
            "successful": ended and not failed,
            "messages": messages,
        }
        if cloud:
            body["finished"] = ended
            body["status"] = ("FAILED" if failed else "SUCCEEDED") if ended else "RUNNING"
            body["errors"] = errors
        elif errors:
            body["errors"] = errors
        if spec.additional_details:
            body["additionalDetails"] = dict(spec.additional_details)
        return body

    def _progress_message(self, percent: int, ended: bool, failed: bool) -> dict[str, Any]:
        spec = self.spec
        if spec.pages > 0:
            if ended and not failed:
                return {
                    "translation": f"Copied {spec.pages} pages",
                    "key": "STATUS_COPIED_PAGES",
                    "args": [str(spec.pages)],
                }
            copied = spec.pages * percent // 100
            return {
                "translation": f"Copied {copied} of {spec.pages} pages",
                "key": "STATUS_COPYING_PAGES",
                "args": [str(copied), str(spec.pages)],
            }
        message: dict[str, Any] = {"translation": spec.status_message, "args": []}
        if spec.status_key is not None:
            message["key"] = spec.status_key
        elif spec.shape == "datacenter":
            message["key"] = _DC_DEFAULT_MESSAGE_KEY  # Data Center messages always carry a key.
        return message

    def _entry(self, key: str) -> dict[str, Any]:
        args = self.spec.error_args
        text = translate(key, args)
        if self.spec.key_placement == "translation":
            return {"translation": f"{key}: {text}", "args": list(args)}
        return {"translation": text, "key": key, "args": list(args)}
