"""``LongTaskSensor``: waits for a Confluence long-running task, in poke, reschedule or deferrable mode."""

from __future__ import annotations

import time
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseSensorOperator, PokeReturnValue, conf
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from airflow_provider_confluence.core import RetryPolicy, validate_task_id
from airflow_provider_confluence.exceptions import (
    ConfluenceNotFoundError,
)
from airflow_provider_confluence.hooks.confluence import ConfluenceHook
from airflow_provider_confluence.polling import DEFAULT_STALL_TIMEOUT, LongTaskWait, check_wait_arguments
from airflow_provider_confluence.triggers.longtask import LongTaskTrigger, result_from_event

if TYPE_CHECKING:
    from collections.abc import Sequence

    from airflow.sdk import Context


class LongTaskSensor(BaseSensorOperator):
    """
    Waits until Confluence long task ``long_task_id`` ends; fails with its error keys if it failed.

    On success the task's return value (XCom) is the final status summary, with
    ``additional_details`` such as ``destinationUrl``. Progress changes are logged.

    :param long_task_id: the Confluence task id (templated: e.g. ``"{{ params.long_task_id }}"`` or
        an upstream task's XCom).
    :param confluence_conn_id: the Airflow connection (type ``confluence``).
    :param deferrable: wait in the triggerer instead of a worker slot. Defaults to Airflow's
        ``[operators] default_deferrable``.
    :param poke_interval: seconds between status checks.
    :param timeout: seconds before the sensor gives up (``AirflowSensorTimeout``; skips with ``soft_fail``).
    :param not_found_grace_period: seconds a 404 is tolerated after the wait started, for a task that
        was started a moment ago and is not visible yet.
    :param fail_on_warnings: fail when the task succeeded with ``WARN_*`` keys (off: warnings are logged).
    :param stall_timeout: seconds a not-done task's clock (``elapsedTime``) may stand still before the
        sensor fails with ``LongTaskStalled``; None waits until ``timeout``. Not applied in reschedule mode.
    :param adaptive_polling: poll less often while the task's estimated end is far away (deferrable mode).
    :param min_poke_interval: the shortest adaptive wait (default: ``poke_interval`` / 6).
    :param max_poke_interval: the longest adaptive wait (default: 10 x ``poke_interval``).
    :param max_retries: consecutive retries of one status check on transient trouble (429, 5xx, resets).
    """

    template_fields: Sequence[str] = ("long_task_id", "confluence_conn_id")
    ui_color = "#deebff"

    def __init__(
        self,
        *,
        long_task_id: str,
        confluence_conn_id: str = ConfluenceHook.default_conn_name,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        poke_interval: float = 30.0,
        not_found_grace_period: float = 60.0,
        fail_on_warnings: bool = False,
        stall_timeout: float | None = DEFAULT_STALL_TIMEOUT,
        adaptive_polling: bool = False,
        min_poke_interval: float | None = None,
        max_poke_interval: float | None = None,
        max_retries: int = RetryPolicy.max_retries,
        **kwargs: Any,
    ) -> None:
        super().__init__(poke_interval=poke_interval, **kwargs)
        check_wait_arguments(
            confluence_conn_id=confluence_conn_id,
            positive={
                "poke_interval": self.poke_interval,
                "stall_timeout": stall_timeout,
                "min_poke_interval": min_poke_interval,
                "max_poke_interval": max_poke_interval,
            },
            non_negative={"not_found_grace_period": not_found_grace_period},
            flags={
                "deferrable": deferrable,
                "fail_on_warnings": fail_on_warnings,
                "adaptive_polling": adaptive_polling,
            },
            max_retries=max_retries,
            bounds=("min_poke_interval", "max_poke_interval"),
        )
        self.long_task_id = long_task_id
        self.confluence_conn_id = confluence_conn_id
        self.deferrable = deferrable
        self.not_found_grace_period = float(not_found_grace_period)
        self.fail_on_warnings = fail_on_warnings
        self.stall_timeout = None if stall_timeout is None else float(stall_timeout)
        self.adaptive_polling = adaptive_polling
        self.min_poke_interval = None if min_poke_interval is None else float(min_poke_interval)
        self.max_poke_interval = None if max_poke_interval is None else float(max_poke_interval)
        self.max_retries = max_retries
        self._wait: LongTaskWait | None = None

    @cached_property
    def hook(self) -> ConfluenceHook:
        return ConfluenceHook(self.confluence_conn_id, retry_policy=RetryPolicy(max_retries=self.max_retries))

    # ------------------------------------------------------------------ poke and reschedule
    def execute(self, context: Context) -> Any:
        validate_task_id(self.long_task_id)  # a bad id fails before any request, in every mode
        try:
            if not self.deferrable:
                return super().execute(context)
            started_at = time.time()
            first = self._first_check(context)
            if first:
                return first.xcom_value if isinstance(first, PokeReturnValue) else None
            self.log.info(
                "Deferring: waiting for Confluence task %s in the triggerer (timeout %s s).",
                self.long_task_id,
                self.timeout,
            )
            self.defer(
                trigger=LongTaskTrigger(
                    long_task_id=str(self.long_task_id),
                    confluence_conn_id=self.confluence_conn_id,
                    poll_interval=self.poke_interval,
                    end_time=started_at + self.timeout,
                    started_at=started_at,
                    not_found_grace=self.not_found_grace_period,
                    warnings_fail=self.fail_on_warnings,
                    stall_timeout=self.stall_timeout,
                    adaptive_polling=self.adaptive_polling,
                    min_poll_interval=self.min_poke_interval,
                    max_poll_interval=self.max_poke_interval,
                    max_retries=self.max_retries,
                    logged_progress=self._logged_progress(),
                ),
                method_name="execute_complete",
                timeout=timedelta(seconds=self.timeout),
            )
        finally:
            self.hook.close()

    def _first_check(self, context: Context) -> bool | PokeReturnValue:
        """One check before deferring, with poke mode's rules for soft_fail, never_fail and silent_fail."""
        try:
            return self.poke(context)
        except AirflowSkipException:
            raise
        except Exception as error:
            if (self.soft_fail and isinstance(error, AirflowFailException)) or self.never_fail:
                raise AirflowSkipException(f"Skipping: {error}") from error
            if self.silent_fail and not isinstance(error, AirflowFailException):
                self.log.error("The first check failed (%s); deferring all the same (silent_fail).", error)
                return False
            raise

    def _logged_progress(self) -> list[Any] | None:
        last = self._wait.last_seen if self._wait else None
        return [last.percentage_complete, last.status] if last else None

    def poke(self, context: Context) -> bool | PokeReturnValue:
        wait = self._get_wait(context)
        try:
            task = self.hook.get_long_task(str(self.long_task_id))
        except ConfluenceNotFoundError:
            if wait.tolerates_not_found(time.time()):
                self.log.info(
                    "Confluence task %s is not visible yet (404); checking again.", self.long_task_id
                )
                return False
            raise
        verdict = wait.on_status(task, time.time())
        if verdict.progress_line:
            self.log.info("%s", verdict.progress_line)
        if verdict.failure is not None:
            raise verdict.failure
        if not verdict.done:
            return False
        self._log_success(None if verdict.progress_line else task.describe(), task.warning_keys)
        return PokeReturnValue(is_done=True, xcom_value=task.summary())

    def _get_wait(self, context: Context) -> LongTaskWait:
        if self._wait is None:
            started_at = time.time()
            if self.reschedule:  # each reschedule builds a new operator: count from the first try
                first = context["ti"].get_first_reschedule_date(context)
                if first is not None:
                    started_at = first.timestamp()
            self._wait = LongTaskWait(
                str(self.long_task_id),
                started_at=started_at,
                not_found_grace=self.not_found_grace_period,
                warnings_fail=self.fail_on_warnings,
                stall_timeout=None if self.reschedule else self.stall_timeout,
            )
        return self._wait

    # ------------------------------------------------------------------ deferrable
    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> Any:
        """Turn the trigger's event into the task's result, or into the exception that explains it."""
        summary = result_from_event(event, str(self.long_task_id))
        self._log_success(
            str(event.get("message") or "") if event else None, summary.get("warning_keys") or ()
        )
        return summary

    def _log_success(self, line: str | None, warning_keys: Sequence[str]) -> None:
        if line:
            self.log.info("%s", line)
        if warning_keys:
            self.log.warning(
                "Confluence task %s succeeded with warnings: %s (set fail_on_warnings=True to fail on them).",
                self.long_task_id,
                ", ".join(warning_keys),
            )
