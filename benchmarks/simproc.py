"""The Confluence simulator in a child process, driven through its control API (standard library only).

The benchmark measures its own process's CPU time; running the simulator in another process keeps the
server's work out of that figure. The control API (``/_simulator/...``) is called with ``urllib`` so
that its connections never go through the benchmark's event loop (whose connections are counted).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from types import TracebackType

EMAIL = "bench@example.com"
TOKEN = "bench-sim-token"
_START_TIMEOUT = 60.0
_CLK_TCK = os.sysconf("SC_CLK_TCK")


class SimulatorProcess:
    """``python -m airflow_provider_confluence.testing --scenario empty`` on a free port of 127.0.0.1."""

    def __init__(self, workdir: Path) -> None:
        self._workdir = workdir
        self._port_file = workdir / "simulator.port"
        self._log_path = workdir / "simulator.log"
        self._process: subprocess.Popen[bytes] | None = None
        self._port: int | None = None
        # Never through a proxy: the simulator is on loopback.
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    # -- lifecycle ---------------------------------------------------------------------------------
    def start(self) -> SimulatorProcess:
        command = [
            sys.executable,
            "-m",
            "airflow_provider_confluence.testing",
            "--port",
            "0",
            "--port-file",
            str(self._port_file),
            "--scenario",
            "empty",
            "--email",
            EMAIL,
            "--token",
            TOKEN,
        ]
        with self._log_path.open("wb") as log:
            self._process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + _START_TIMEOUT
        while not self._port_file.exists():
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(
                    f"the simulator did not start; its output:\n{self._log_path.read_text(errors='replace')}"
                )
            time.sleep(0.05)
        self._port = int(self._port_file.read_text().strip())
        return self

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)

    def __enter__(self) -> SimulatorProcess:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- addresses and connections -----------------------------------------------------------------
    @property
    def url(self) -> str:
        if self._port is None:
            raise RuntimeError("the simulator is not running")
        return f"http://127.0.0.1:{self._port}"

    @property
    def cloud_url(self) -> str:
        return f"{self.url}/wiki"

    def status_path(self, task_id: str) -> str:
        """The status path below the server root (what an HTTP connection's endpoint is)."""
        return f"/wiki/rest/api/longtask/{task_id}"

    def confluence_connection(self) -> str:
        """The JSON connection that ``ConfluenceSimulator.airflow_connection()`` gives (Cloud, basic auth)."""
        return json.dumps(
            {
                "conn_type": "confluence",
                "host": self.cloud_url,
                "login": EMAIL,
                "password": TOKEN,
                "extra": {"deployment": "cloud", "auth_type": "basic"},
            }
        )

    def slow_confluence_connection(self, timeout: float) -> str:
        """The Confluence connection with extra ``timeout`` (seconds per request)."""
        connection = json.loads(self.confluence_connection())
        connection["extra"]["timeout"] = timeout
        return json.dumps(connection)

    def http_connection(self) -> str:
        """The same server and credentials as an ``http`` connection (for ``HttpAsyncHook``)."""
        return json.dumps({"conn_type": "http", "host": self.url, "login": EMAIL, "password": TOKEN})

    # -- control API -------------------------------------------------------------------------------
    def _control(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"{self.url}/_simulator{path}",
            data=data,
            method=method,
            headers={"Content-Type": "application/json"} if data is not None else {},
        )
        with self._opener.open(request, timeout=30) as response:
            return json.loads(response.read())

    def create_task(self, spec: dict[str, Any]) -> str:
        """Create a task from a ``TaskSpec`` dict; returns its id."""
        task_id: str = self._control("POST", "/tasks", spec)["id"]
        return task_id

    def stats(self) -> dict[str, Any]:
        stats: dict[str, Any] = self._control("GET", "/stats")
        return stats

    def reset_stats(self) -> None:
        self._control("DELETE", "/stats")

    def set_latency(self, seconds: float) -> None:
        """Answer every status GET ``seconds`` late (the simulator's ``slow`` fault); 0 turns it off."""
        rate = 1.0 if seconds > 0 else 0.0
        self._control("POST", "/fault-rate", {"rate": rate, "kinds": ["slow"], "delay": max(seconds, 0.0)})

    def cpu_seconds(self) -> float:
        """User + system CPU time the simulator process has used so far."""
        if self._process is None:
            return 0.0
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{self._process.pid}/stat").read_text().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / _CLK_TCK
        return 0.0
