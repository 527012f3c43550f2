"""Ready-made sets of tasks for the command line and demos (``--scenario demo``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from airflow_provider_confluence.testing.models import TaskSpec

if TYPE_CHECKING:
    from airflow_provider_confluence.testing.server import ConfluenceSimulator

__all__ = ["DEMO_TASK_IDS", "SCENARIOS", "ScenarioTask", "load_scenario"]

SCENARIOS: tuple[str, ...] = ("demo", "empty")
DEMO_TASK_IDS: tuple[str, ...] = ("880001", "880002", "880003")


@dataclass(frozen=True)
class ScenarioTask:
    """One task a scenario created, with a line saying what it will do."""

    task_id: str
    description: str


def demo_specs(cloud_url: str) -> list[tuple[TaskSpec, str]]:
    """The demo tasks; ``cloud_url`` is the simulator's ``/wiki`` base (download links point there)."""
    return [
        (
            TaskSpec(
                task_id="880001",
                duration=12.0,
                curve="linear",
                outcome="success",
                name_key="com.atlassian.confluence.importexport.actions.ExportSpaceAction.action.name",
                status_message="Exporting space",
                additional_details={"destinationUrl": f"{cloud_url}/download/temp/export-880001.zip"},
                start_on_first_poll=True,
            ),
            "space export: progresses steadily, succeeds after ~12 s with a download destinationUrl",
        ),
        (
            TaskSpec(
                task_id="880002",
                duration=6.0,
                curve="stepped",
                outcome="failure",
                error_keys=("ERROR_LOCK_FAILED", "ERROR_RELINK"),
                error_args=("DEMO",),
                name_key="com.atlassian.confluence.spaces.actions.RemoveSpaceAction.action.name",
                status_message="Deleting space",
                start_on_first_poll=True,
            ),
            "space deletion: 25 % steps, fails after ~6 s with ERROR_LOCK_FAILED and ERROR_RELINK",
        ),
        (
            TaskSpec(
                task_id="880003",
                duration=8.0,
                curve="linear",
                outcome="warnings",
                warning_keys=("WARN_RENAME_PAGE",),
                error_args=("Q3 Plan",),
                pages=10,
                additional_details={
                    "destinationId": "990003",
                    "destinationUrl": f"{cloud_url}/pages/viewpage.action?pageId=990003",
                    "totalPageNeedToCopy": 10,
                },
                start_on_first_poll=True,
            ),
            "page-tree copy of 10 pages: succeeds after ~8 s with a WARN_RENAME_PAGE warning",
        ),
    ]


def load_scenario(sim: ConfluenceSimulator, name: str) -> list[ScenarioTask]:
    """Create the tasks of scenario ``name`` on a running simulator and describe them."""
    if name == "empty":
        return []
    if name != "demo":
        raise ValueError(f"unknown scenario {name!r}; choose one of {', '.join(SCENARIOS)}")
    return [ScenarioTask(sim.add_task(spec), text) for spec, text in demo_specs(sim.cloud_url)]
