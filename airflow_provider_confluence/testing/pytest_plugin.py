"""A pytest plugin with a running Confluence simulator for DAG authors' tests.

Enable it in your root ``conftest.py``::

    pytest_plugins = ["airflow_provider_confluence.testing.pytest_plugin"]

and ask for the fixture::

    def test_my_dag(confluence_simulator, monkeypatch):
        task_id = confluence_simulator.add_task(duration=0.5, outcome="success")
        monkeypatch.setenv("AIRFLOW_CONN_CONFLUENCE_DEFAULT", confluence_simulator.airflow_connection())
        ...
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from airflow_provider_confluence.testing.server import ConfluenceSimulator

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = ["confluence_simulator"]


@pytest.fixture
def confluence_simulator() -> Iterator[ConfluenceSimulator]:
    """A started :class:`ConfluenceSimulator` on a free loopback port (default credentials), then stopped."""
    with ConfluenceSimulator() as sim:
        yield sim
