"""A Confluence long-running-task simulator: a real HTTP server (aiohttp) for tests, demos and benchmarks.

It plays the part of Confluence's long-task API so that the hook, the sensor, the trigger and DAG authors' own
tests can run against HTTP without a Confluence site::

    from airflow_provider_confluence.testing import ConfluenceSimulator, Fault, TaskSpec

    with ConfluenceSimulator(email="demo@example.com", api_token="sim-token") as sim:
        task_id = sim.add_task(TaskSpec(duration=2.0, curve="linear", outcome="failure"))
        sim.inject(Fault("429", times=2, retry_after="1"))
        url = sim.status_url(task_id)      # {sim.cloud_url}/rest/api/longtask/{task_id}

``async with ConfluenceSimulator() as sim:`` runs it on the current event loop instead of a thread.

Served under the Cloud prefix ``/wiki``, the Data Center context path (``/confluence`` by default) and the
API-gateway form ``/ex/confluence/{cloud_id}/wiki``, all with basic (e-mail + API token) or bearer auth:

- ``GET  {prefix}/rest/api/longtask/{id}``: a task's status; 404 for unknown ids and inside ``not_found_for``;
- ``GET  {prefix}/rest/api/longtask?start=&limit=&key=``: the paginated list (``_links.next`` while more
  remain);
- ``POST {prefix}/rest/api/content/{id}/pagehierarchy/copy``, ``POST {prefix}/rest/api/content/archive``,
  ``DELETE {prefix}/rest/api/content/{id}/pageTree``, ``DELETE {prefix}/rest/api/space/{key}``: start a task
  (202 with ``{"id", "links": {"status"}}``); the tasks follow ``sim.operation_spec``.

A control API without auth serves scripts: ``POST /_simulator/tasks`` (a TaskSpec as JSON),
``GET /_simulator/tasks``, ``GET|DELETE /_simulator/stats``, ``POST|DELETE /_simulator/faults`` (a Fault as
JSON), ``POST /_simulator/fault-rate`` (``{"rate", "kinds", "seed", "delay"}``) and
``GET /_simulator/health``.

From a shell: ``python -m airflow_provider_confluence.testing --port 8090`` (see ``--help``). Its ``demo``
scenario creates three tasks with fixed ids whose clocks start at their first status GET:

- ``880001``: a space export that progresses steadily and succeeds after about 12 s, with
  ``additionalDetails.destinationUrl`` = ``<sim url>/wiki/download/temp/export-880001.zip``;
- ``880002``: a space deletion in 25 % steps that fails after about 6 s with ``ERROR_LOCK_FAILED`` and
  ``ERROR_RELINK`` (argument ``DEMO``);
- ``880003``: a copy of a 10-page tree that succeeds after about 8 s with a ``WARN_RENAME_PAGE`` warning and
  ``destinationId``/``destinationUrl``/``totalPageNeedToCopy`` in ``additionalDetails``.

For pytest: ``pytest_plugins = ["airflow_provider_confluence.testing.pytest_plugin"]`` gives the
``confluence_simulator`` fixture. This package imports only the standard library and aiohttp.
"""

from __future__ import annotations

from airflow_provider_confluence.testing.models import Fault, TaskSpec
from airflow_provider_confluence.testing.scenarios import DEMO_TASK_IDS, load_scenario
from airflow_provider_confluence.testing.server import ConfluenceSimulator
from airflow_provider_confluence.testing.stats import SimulatorStats, TaskStats

__all__ = [
    "DEMO_TASK_IDS",
    "ConfluenceSimulator",
    "Fault",
    "SimulatorStats",
    "TaskSpec",
    "TaskStats",
    "load_scenario",
]
