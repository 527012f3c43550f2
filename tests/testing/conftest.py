"""Shared fixtures for the simulator's tests: a running simulator and an authenticated HTTP client."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from airflow_provider_confluence.testing import ConfluenceSimulator

EMAIL = "demo@example.com"
TOKEN = "sim-token"
DATA_DIR = Path(__file__).resolve().parents[1] / "data"


def is_done(body: dict[str, Any]) -> bool:
    """The provider's rule: ``finished`` when present, else ``percentageComplete >= 100``."""
    if "finished" in body:
        return bool(body["finished"])
    return int(body["percentageComplete"]) >= 100


@pytest.fixture
def load_data() -> Callable[[str], Any]:
    """Read a JSON file of ``tests/data``."""

    def load(name: str) -> Any:
        return json.loads((DATA_DIR / name).read_text(encoding="utf-8"))

    return load


class Api:
    """A thin, authenticated ``requests`` client for one simulator."""

    def __init__(self, sim: ConfluenceSimulator, session: requests.Session) -> None:
        self.sim = sim
        self.session = session

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", 10)
        return self.session.request(method, self.sim.url + path, **kwargs)

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("GET", path, **kwargs)

    email = EMAIL
    token = TOKEN
    is_done = staticmethod(is_done)

    def status(self, task_id: str, prefix: str = "/wiki", **kwargs: Any) -> requests.Response:
        return self.get(f"{prefix}/rest/api/longtask/{task_id}", **kwargs)

    def status_json(self, task_id: str, prefix: str = "/wiki") -> dict[str, Any]:
        response = self.status(task_id, prefix)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def history(
        self, task_id: str, *, seconds: float, prefix: str = "/wiki", interval: float = 0.02
    ) -> list[dict[str, Any]]:
        """Every status answered while polling ``task_id`` for ``seconds`` (all must be 200)."""
        bodies = [self.status_json(task_id, prefix)]
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            time.sleep(interval)
            bodies.append(self.status_json(task_id, prefix))
        return bodies

    def until_done(self, task_id: str, *, prefix: str = "/wiki", timeout: float = 5.0) -> dict[str, Any]:
        """Poll until the task is done by the provider's rule; return the final status."""
        deadline = time.monotonic() + timeout
        while True:
            body = self.status_json(task_id, prefix)
            if is_done(body):
                return body
            assert time.monotonic() < deadline, f"task {task_id} not done after {timeout} s: {body}"
            time.sleep(0.02)


@pytest.fixture(autouse=True)
def no_simulator_thread_left_behind() -> Iterator[None]:
    """Every test must leave no simulator thread running (the threaded form joins its thread on exit)."""
    yield
    leftovers = [thread.name for thread in threading.enumerate() if thread.name.startswith("confluence-sim")]
    assert not leftovers, f"simulator threads left running: {leftovers}"


@pytest.fixture
def sim() -> Iterator[ConfluenceSimulator]:
    with ConfluenceSimulator(email=EMAIL, api_token=TOKEN) as simulator:
        yield simulator


@pytest.fixture
def api(sim: ConfluenceSimulator) -> Iterator[Api]:
    with requests.Session() as session:
        session.auth = (EMAIL, TOKEN)
        yield Api(sim, session)


@pytest.fixture
def anonymous(sim: ConfluenceSimulator) -> Iterator[Api]:
    """A client without credentials (for the control API and 401 checks)."""
    with requests.Session() as session:
        yield Api(sim, session)
