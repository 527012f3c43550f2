"""
``ConfluenceLongTaskOperator``: the base of the operators that start a Confluence long task and wait.

A subclass says how to start its work (:meth:`start_long_task`); the base pushes the task id to XCom,
then waits with the same rules as ``LongTaskSensor``: in the triggerer (deferrable) or by polling
in the worker. A retry resumes waiting on the task it already started instead of starting the work
twice, through Airflow's ``task_state_store`` (Airflow 3.3+).
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator, conf
from airflow.sdk.exceptions import AirflowSensorTimeout, AirflowSkipException, TaskDeferralTimeout

from airflow_provider_confluence.core import RetryPolicy
from airflow_provider_confluence.exceptions import (
    ConfluenceNotFoundError,
    ConfluenceTransientError,
    LongTaskFailed,
)
from airflow_provider_confluence.hooks.confluence import ConfluenceHook
from airflow_provider_confluence.longtask import Outcome
from airflow_provider_confluence.polling import DEFAULT_STALL_TIMEOUT, LongTaskWait, check_wait_arguments
from airflow_provider_confluence.triggers.longtask import LongTaskTrigger, result_from_event

if TYPE_CHECKING:
    from collections.abc import Iterator

    from airflow.sdk import Context

    from airflow_provider_confluence.longtask import LongTask

#: Where a started task's id is kept across retries (``task_state_store``) and in XCom.
STATE_KEY = "confluence_long_task_id"
XCOM_KEY = "long_task_id"
DEFAULT_TIMEOUT = timedelta(days=1).total_seconds()


class ConfluenceLongTaskOperator(BaseOperator):
    """
    Starts a Confluence long task and (by default) waits for it.

    The started task id is pushed to XCom under ``long_task_id`` before waiting. When waiting, the
    return value is the final status summary (as ``LongTaskSensor``'s); without waiting, the task id.

    :param confluence_conn_id: the Airflow connection (type ``confluence``).
    :param wait_for_completion: wait for the task to end (default). Off: return once it started.
    :param deferrable: wait in the triggerer. Defaults to ``[operators] default_deferrable``.
    :param poll_interval: seconds between status checks.
    :param timeout: seconds to wait before ``AirflowSensorTimeout`` (default one day).
    :param soft_fail: skip instead of failing on timeout or on a failed Confluence task.
    :param not_found_grace_period: seconds a 404 is tolerated right after the start.
    :param fail_on_warnings: fail when the task succeeded with ``WARN_*`` keys.
    :param stall_timeout: seconds a not-done task's clock may stand still (see ``LongTaskSensor``).
    :param max_retries: consecutive retries of one status check on transient trouble.
    """

    template_fields: tuple[str, ...] = ("confluence_conn_id",)
    ui_color = "#deebff"

    def __init__(
        self,
        *,
        confluence_conn_id: str = ConfluenceHook.default_conn_name,
        wait_for_completion: bool = True,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        poll_interval: float = 30.0,
        timeout: float = DEFAULT_TIMEOUT,
        soft_fail: bool = False,
        not_found_grace_period: float = 60.0,
        fail_on_warnings: bool = False,
        stall_timeout: float | None = DEFAULT_STALL_TIMEOUT,
        max_retries: int = RetryPolicy.max_retries,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        check_wait_arguments(
            confluence_conn_id=confluence_conn_id,
            positive={"poll_interval": poll_interval, "timeout": timeout, "stall_timeout": stall_timeout},
            non_negative={"not_found_grace_period": not_found_grace_period},
            flags={
                "wait_for_completion": wait_for_completion,
                "deferrable": deferrable,
                "soft_fail": soft_fail,
                "fail_on_warnings": fail_on_warnings,
            },
            max_retries=max_retries,
        )
        self.confluence_conn_id = confluence_conn_id
        self.wait_for_completion = wait_for_completion
        self.deferrable = deferrable
        self.poll_interval = float(poll_interval)
        self.timeout = float(timeout)
        self.soft_fail = soft_fail
        self.not_found_grace_period = float(not_found_grace_period)
        self.fail_on_warnings = fail_on_warnings
        self.stall_timeout = stall_timeout
        self.max_retries = max_retries

    @cached_property
    def hook(self) -> ConfluenceHook:
        return ConfluenceHook(self.confluence_conn_id, retry_policy=RetryPolicy(max_retries=self.max_retries))

    def start_long_task(self, context: Context) -> str:
        """Start the work in Confluence and return the long-task id. Subclasses implement it."""
        raise NotImplementedError

    # ------------------------------------------------------------------ execute
    def execute(self, context: Context) -> Any:
        try:
            long_task_id, finished = self._resume_or_start(context)
            context["ti"].xcom_push(key=XCOM_KEY, value=long_task_id)
            if not self.wait_for_completion:
                return long_task_id
            with self._soft_fail():
                if finished is None:
                    return self._wait(context, long_task_id)
                if finished.outcome(warnings_fail=self.fail_on_warnings) is Outcome.FAILURE:
                    raise finished.to_failure()  # succeeded with warnings made fatal: do not redo it
                return finished.summary()
        finally:
            self.hook.close()

    def _resume_or_start(self, context: Context) -> tuple[str, LongTask | None]:
        """The task to wait for: a previous try's, if it runs or succeeded (then with it); else a new one."""
        store = context.get("task_state_store")
        if store is None:
            self.log.warning(
                "This Airflow has no task_state_store (it arrived in Airflow 3.3): a retry of this task "
                "starts the Confluence work again instead of resuming the wait."
            )
        else:
            previous = store.get(STATE_KEY)
            if previous:
                resumed = self._previous(str(previous))
                if resumed is not None:
                    return str(previous), resumed if resumed.is_done else None
        long_task_id = self.start_long_task(context)
        if store is not None:
            store.set(STATE_KEY, long_task_id)
        return long_task_id, None

    def _previous(self, long_task_id: str) -> LongTask | None:
        """
        The previous try's task if it is still running or succeeded; None if it must start again.

        A task that succeeded with warnings counts as succeeded here, even with ``fail_on_warnings``:
        the work is done, and doing it again would duplicate it.
        """
        try:
            task = self.hook.get_long_task(long_task_id)
        except ConfluenceNotFoundError:
            self.log.warning("The task %s started by a previous try is gone; starting again.", long_task_id)
            return None
        if task.is_done and not task.successful:
            self.log.warning("The task %s started by a previous try failed; starting again.", long_task_id)
            return None
        self.log.info("Resuming: a previous try already started Confluence task %s.", long_task_id)
        return task

    def _wait(self, context: Context, long_task_id: str) -> dict[str, Any]:
        started_at = time.time()
        if self.deferrable:
            self.log.info(
                "Deferring: waiting for Confluence task %s in the triggerer (timeout %s s).",
                long_task_id,
                self.timeout,
            )
            self.defer(
                trigger=LongTaskTrigger(
                    long_task_id=long_task_id,
                    confluence_conn_id=self.confluence_conn_id,
                    poll_interval=self.poll_interval,
                    end_time=started_at + self.timeout,
                    started_at=started_at,
                    not_found_grace=self.not_found_grace_period,
                    warnings_fail=self.fail_on_warnings,
                    stall_timeout=self.stall_timeout,
                    max_retries=self.max_retries,
                ),
                method_name="execute_complete",
                timeout=timedelta(seconds=self.timeout),
            )
        return self._poll_until_done(long_task_id, started_at)

    def _poll_until_done(self, long_task_id: str, started_at: float) -> dict[str, Any]:
        """The worker-side wait: the same rules as the trigger's, with the sync transport."""
        deadline = started_at + self.timeout
        wait = LongTaskWait(
            long_task_id,
            started_at=started_at,
            not_found_grace=self.not_found_grace_period,
            warnings_fail=self.fail_on_warnings,
            stall_timeout=self.stall_timeout,
        )
        while time.time() < deadline:
            try:
                task = self.hook.get_long_task(long_task_id, deadline=deadline)
            except ConfluenceNotFoundError:
                if not wait.tolerates_not_found(time.time()):
                    raise
            except ConfluenceTransientError as error:
                if not error.deadline_reached:
                    raise
            else:
                verdict = wait.on_status(task, time.time())
                if verdict.progress_line:
                    self.log.info("%s", verdict.progress_line)
                if verdict.failure is not None:
                    raise verdict.failure
                if verdict.done:
                    return task.summary()
            time.sleep(max(0.0, min(self.poll_interval, deadline - time.time())))
        last = f"; last seen: {wait.last_seen.describe()}" if wait.last_seen else ""
        raise AirflowSensorTimeout(
            f"Confluence task {long_task_id} did not finish within {self.timeout:g} s{last}."
        )

    # ------------------------------------------------------------------ deferrable
    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> Any:
        long_task_id = str(event.get("long_task_id") or "?") if isinstance(event, dict) else "?"
        return result_from_event(event, long_task_id)

    def resume_execution(self, next_method: str, next_kwargs: dict[str, Any] | None, context: Context) -> Any:
        with self._soft_fail():
            try:
                return super().resume_execution(next_method, next_kwargs, context)
            except TaskDeferralTimeout as timeout:  # the scheduler's deferral timeout: as the sensor's
                raise AirflowSensorTimeout(*timeout.args) from timeout

    @contextmanager
    def _soft_fail(self) -> Iterator[None]:
        """With ``soft_fail``, a timeout or a failed Confluence task skips instead of failing."""
        try:
            yield
        except (AirflowSensorTimeout, LongTaskFailed) as error:
            if self.soft_fail:
                raise AirflowSkipException(f"Skipping due to soft_fail: {error}") from error
            raise


def require_confirmation(operator: str, confirm_delete: object, target: str) -> None:
    """Destructive operators need ``confirm_delete=True``: checked when the DAG is parsed."""
    if confirm_delete is not True:
        raise ValueError(
            f"{operator} deletes the {target} and everything in it. Pass confirm_delete=True to confirm "
            "that this DAG is meant to delete it."
        )
