"""``LongTaskTrigger``: polls a Confluence long task in the triggerer until it ends, then fires once."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from airflow.sdk.exceptions import AirflowSensorTimeout
from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_confluence import exceptions
from airflow_provider_confluence.core import RetryPolicy
from airflow_provider_confluence.exceptions import (
    ConfluenceError,
    ConfluenceNotFoundError,
    ConfluenceTransientError,
    LongTaskFailed,
    LongTaskStalled,
)
from airflow_provider_confluence.hooks.confluence import ConfluenceHook
from airflow_provider_confluence.longtask import LongTask, Message, format_duration
from airflow_provider_confluence.polling import DEFAULT_STALL_TIMEOUT, LongTaskWait, PollSchedule

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

#: The statuses of the one event a trigger fires.
SUCCESS, FAILURE, ERROR, TIMEOUT = "success", "failure", "error", "timeout"


class LongTaskTrigger(BaseTrigger):
    """
    Waits in the triggerer for Confluence long task ``long_task_id`` to end, and fires exactly one event.

    Every argument is a JSON primitive, so the trigger survives a triggerer restart: rebuilt from
    :meth:`serialize`, it resumes with the same absolute ``end_time`` (``time.time()`` seconds).

    The event is a dict with ``status``:

    * ``success``: the task succeeded; ``task`` holds its summary (``LongTask.summary()``);
    * ``failure``: it ended with ``successful=false`` (or stalled); ``message``, ``error_keys``,
      ``errors`` (key, translation, args) and ``task``;
    * ``error``: Confluence could not be asked (credentials, permission, a 404 past the grace window,
      a bad response, retries spent); ``message`` and ``error_type``;
    * ``timeout``: ``end_time`` passed first; ``message`` and the last ``task`` seen, if any.

    :param long_task_id: the Confluence task id.
    :param confluence_conn_id: the Airflow connection.
    :param poll_interval: seconds between polls (the starting point when ``adaptive_polling``).
    :param end_time: wall-clock deadline (``time.time()``), or None for none.
    :param started_at: when the wait began (``time.time()``); the 404 grace window counts from it.
    :param not_found_grace: seconds after ``started_at`` during which a 404 means "not visible yet".
    :param warnings_fail: fail a task that succeeded with ``WARN_*`` keys.
    :param stall_timeout: seconds a not-done task's clock may stand still; None never gives up.
    :param adaptive_polling: poll less often while the task's ETA is far away.
    :param min_poll_interval: the shortest adaptive wait (default: ``poll_interval`` / 6).
    :param max_poll_interval: the longest adaptive wait (default: 10 x ``poll_interval``).
    :param max_retries: consecutive retries of one poll on transient trouble.
    :param logged_progress: ``[percent, status]`` the deferring task already logged (not logged again).
    """

    def __init__(
        self,
        *,
        long_task_id: str,
        confluence_conn_id: str = ConfluenceHook.default_conn_name,
        poll_interval: float = 30.0,
        end_time: float | None = None,
        started_at: float | None = None,
        not_found_grace: float = 60.0,
        warnings_fail: bool = False,
        stall_timeout: float | None = DEFAULT_STALL_TIMEOUT,
        adaptive_polling: bool = False,
        min_poll_interval: float | None = None,
        max_poll_interval: float | None = None,
        max_retries: int = RetryPolicy.max_retries,
        logged_progress: list[Any] | None = None,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.long_task_id = str(long_task_id)
        self.confluence_conn_id = confluence_conn_id
        self.poll_interval = float(poll_interval)
        if not self.poll_interval > 0:
            raise ValueError(f"poll_interval must be a number of seconds > 0, got {poll_interval!r}.")
        self.end_time = None if end_time is None else float(end_time)
        self.started_at = time.time() if started_at is None else float(started_at)
        self.not_found_grace = float(not_found_grace)
        self.warnings_fail = bool(warnings_fail)
        self.stall_timeout = None if stall_timeout is None else float(stall_timeout)
        self.adaptive_polling = bool(adaptive_polling)
        self.min_poll_interval = None if min_poll_interval is None else float(min_poll_interval)
        self.max_poll_interval = None if max_poll_interval is None else float(max_poll_interval)
        self.max_retries = int(max_retries)
        self.logged_progress = list(logged_progress) if logged_progress else None

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "long_task_id": self.long_task_id,
                "confluence_conn_id": self.confluence_conn_id,
                "poll_interval": self.poll_interval,
                "end_time": self.end_time,
                "started_at": self.started_at,
                "not_found_grace": self.not_found_grace,
                "warnings_fail": self.warnings_fail,
                "stall_timeout": self.stall_timeout,
                "adaptive_polling": self.adaptive_polling,
                "min_poll_interval": self.min_poll_interval,
                "max_poll_interval": self.max_poll_interval,
                "max_retries": self.max_retries,
                "logged_progress": self.logged_progress,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        hook = ConfluenceHook(self.confluence_conn_id, retry_policy=RetryPolicy(max_retries=self.max_retries))
        try:
            yield TriggerEvent(await self._wait(hook))  # type: ignore[no-untyped-call]
        finally:
            await hook.aclose()

    async def _wait(self, hook: ConfluenceHook) -> dict[str, Any]:
        wait = LongTaskWait(
            self.long_task_id,
            started_at=self.started_at,
            not_found_grace=self.not_found_grace,
            warnings_fail=self.warnings_fail,
            stall_timeout=self.stall_timeout,
        )
        if self.logged_progress and len(self.logged_progress) == 2:
            wait.tracker.already_logged(int(self.logged_progress[0]), self.logged_progress[1])
        schedule = PollSchedule(
            self.poll_interval,
            adaptive=self.adaptive_polling,
            min_interval=self.min_poll_interval,
            max_interval=self.max_poll_interval,
        )
        announced_not_found = False
        while True:
            if self.end_time is not None and time.time() >= self.end_time:
                return self._timeout_event(wait.last_seen)
            task: LongTask | None = None
            try:
                task = await self._poll(hook)
            except asyncio.TimeoutError:
                continue  # the answer did not come before the deadline: the loop reports the timeout
            except ConfluenceNotFoundError as error:
                if not wait.tolerates_not_found(time.time()):
                    return self._error_event(error)
                if not announced_not_found:
                    announced_not_found = True
                    self.log.info(
                        "Confluence task %s is not visible yet (404); waiting up to %s after the start.",
                        self.long_task_id,
                        format_duration(self.not_found_grace),
                    )
            except ConfluenceTransientError as error:
                if not error.deadline_reached or self.end_time is None:
                    return self._error_event(error)
                self.log.warning("%s No retry fits before the deadline.", error.message)
                await asyncio.sleep(max(0.0, self.end_time - time.time()))
                continue
            except ConfluenceError as error:
                return self._error_event(error)
            else:
                verdict = wait.on_status(task, time.time())
                if verdict.progress_line:
                    self.log.info("%s", verdict.progress_line)
                if verdict.failure is not None:
                    return failure_event(verdict.failure)
                if verdict.done:
                    return {
                        "status": SUCCESS,
                        "long_task_id": self.long_task_id,
                        "message": task.describe(),
                        "task": task.summary(),
                    }
            await asyncio.sleep(self._until_next_poll(schedule.next_interval(task)))

    async def _poll(self, hook: ConfluenceHook) -> LongTask:
        """One status check; a Confluence that hangs cannot hold the event back past ``end_time``."""
        check = hook.aget_long_task(self.long_task_id, deadline=self.end_time)
        if self.end_time is None:
            return await check
        return await asyncio.wait_for(check, timeout=max(0.0, self.end_time - time.time()))

    def _until_next_poll(self, seconds: float) -> float:
        if self.end_time is not None:
            seconds = min(seconds, max(0.0, self.end_time - time.time()))
        return seconds

    def _timeout_event(self, last_seen: LongTask | None) -> dict[str, Any]:
        message = f"Confluence task {self.long_task_id} did not finish before the sensor's timeout"
        message += f"; last seen: {last_seen.describe()}." if last_seen else "; its status was never seen."
        return {
            "status": TIMEOUT,
            "long_task_id": self.long_task_id,
            "message": message,
            "task": last_seen.summary() if last_seen else None,
        }

    def _error_event(self, error: ConfluenceError) -> dict[str, Any]:
        self.log.error("%s", error)
        return {
            "status": ERROR,
            "long_task_id": self.long_task_id,
            "message": str(error),
            "error_type": type(error).__name__,
        }


def failure_event(failure: LongTaskFailed) -> dict[str, Any]:
    """The event that reports a failed (or stalled) task; the sensor turns it back into the exception."""
    return {
        "status": FAILURE,
        "long_task_id": failure.task_id,
        "message": failure.message,
        "error_keys": list(failure.error_keys),
        "errors": [m.to_dict() for m in failure.errors],
        "stalled": isinstance(failure, LongTaskStalled),
        "task": failure.task.summary() if failure.task else None,
    }


def result_from_event(event: object, long_task_id: str) -> dict[str, Any]:
    """
    The task summary of a success event; for any other event, the exception that explains it.

    Checks the event strictly: a missing or malformed event, or an unknown status, is an error too.
    """
    if not isinstance(event, dict) or not isinstance(event.get("status"), str):
        raise ConfluenceError(
            f"The trigger for Confluence task {long_task_id} returned no usable event ({event!r}); "
            "the triggerer may have been interrupted. Clear the task to wait again."
        )
    status = event["status"]
    message = str(event.get("message") or f"Confluence task {long_task_id}: {status}")
    if status == SUCCESS:
        summary = event.get("task")
        return dict(summary) if isinstance(summary, dict) else {"id": long_task_id}
    if status == FAILURE:
        failure_type = LongTaskStalled if event.get("stalled") else LongTaskFailed
        raise failure_type(
            message,
            task_id=str(event.get("long_task_id") or long_task_id),
            error_keys=tuple(str(key) for key in event.get("error_keys") or ()),
            errors=tuple(Message.from_dict(e) for e in event.get("errors") or () if isinstance(e, dict)),
        )
    if status == TIMEOUT:
        raise AirflowSensorTimeout(message)
    if status == ERROR:
        raise _error_class(event.get("error_type"))(message)
    raise ConfluenceError(
        f"The trigger for Confluence task {long_task_id} sent an unknown event status {status!r}."
    )


def _error_class(name: object) -> type[ConfluenceError]:
    """The exception class an error event names, limited to this provider's own tree."""
    found = getattr(exceptions, name, None) if isinstance(name, str) else None
    if (
        isinstance(found, type)
        and issubclass(found, ConfluenceError)
        and not issubclass(found, LongTaskFailed)
    ):
        return found
    return ConfluenceError
