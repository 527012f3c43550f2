"""
The deployment the integration tests run against, built once per session:

* the sdist and wheel, built from the checkout with ``python -m build``;
* a FRESH virtual environment with only the wheel installed (it pulls Apache Airflow) and the
  PostgreSQL drivers: the source tree is never on any Airflow process's path;
* a throw-away PostgreSQL cluster on a free port, as a production deployment would use (Airflow
  3.3.2 accepts SQLite with LocalExecutor, but advises against it beyond trials);
* the Confluence simulator, as shipped in the wheel;
* ``airflow api-server``, ``scheduler`` (LocalExecutor), ``dag-processor`` and ``triggerer``, each a
  process of its own, sharing a temporary AIRFLOW_HOME, all on 127.0.0.1.

Teardown stops every process group it started, also when a test fails, on Ctrl-C and on SIGTERM,
then looks for anything left with the run's marker (see ``harness``) and kills it.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from harness import MARKER, AirflowApi, Processes, Simulator, free_port, http, kill_marked, wait_for

if TYPE_CHECKING:
    from collections.abc import Iterator

ROOT = Path(__file__).resolve().parent.parent
HERE = Path(__file__).resolve().parent
STATE = Path(os.environ.get("INTEGRATION_STATE", ROOT / ".venv-integration"))
BASE_PYTHON = os.environ.get("INTEGRATION_PYTHON", sys.executable)
AIRFLOW_VERSION = os.environ.get("INTEGRATION_AIRFLOW_VERSION", "3.3.2")
#: The components, in the order they are stopped.
STOP_ORDER = ("scheduler", "triggerer", "dag-processor", "api-server", "simulator", "postgres")
AIRFLOW_COMPONENTS = STOP_ORDER[:4]
#: ``postgres`` (the default) or ``sqlite`` (to compare; Airflow advises against SQLite in production)
DATABASE = os.environ.get("INTEGRATION_DATABASE", "postgres")
POLL_SECONDS = "2"
SIM_EMAIL, SIM_TOKEN = "demo@example.com", "sim-token"


def log(message: str) -> None:
    print(f"[integration {time.strftime('%H:%M:%S')}] {message}", flush=True)


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def pytest_configure(config: pytest.Config) -> None:
    # SIGTERM (e.g. from `timeout` or CI) unwinds like Ctrl-C: pytest then tears the fixtures down
    signal.signal(signal.SIGTERM, _raise_interrupt)
    signal.signal(signal.SIGHUP, _raise_interrupt)
    # Ctrl-C even when started from a shell that ignores SIGINT in background jobs
    signal.signal(signal.SIGINT, signal.default_int_handler)


# ------------------------------------------------------------------------------------ run folders
@pytest.fixture(scope="session")
def run_id() -> str:
    """Marks every process of this run (integration/run.sh checks by it that none is left)."""
    value = os.environ.get("INTEGRATION_RUN_ID") or uuid.uuid4().hex[:12]
    os.environ[MARKER] = value  # inherited by everything started from here, Chromium included
    return value


@pytest.fixture(scope="session")
def work(run_id: str) -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix=f"confluence-integration-{run_id}-"))
    (folder / "logs").mkdir()
    log(f"run {run_id}: working folder {folder}")
    yield folder
    # keep the logs (and the screenshot) of the last run where people look for them
    kept = STATE / "last-run"
    shutil.rmtree(kept, ignore_errors=True)
    shutil.copytree(folder / "logs", kept / "logs", dirs_exist_ok=True)
    airflow_logs = folder / "airflow" / "logs"
    if airflow_logs.is_dir():
        shutil.copytree(airflow_logs, kept / "airflow-logs", dirs_exist_ok=True)
    shutil.rmtree(folder, ignore_errors=True)
    log(f"logs of this run kept in {kept}")


@pytest.fixture(scope="session")
def processes(run_id: str, work: Path) -> Iterator[Processes]:
    procs = Processes(run_id=run_id, log_dir=work / "logs")
    try:
        yield procs
    finally:
        log("stopping every process this run started")
        procs.stop_all(STOP_ORDER)
        left = kill_marked(run_id)
        for pid, cmd in left:
            log(f"killed a process that had outlived its group: {pid} {cmd[:150]}")
        log("all stopped")


def clean_env() -> dict[str, str]:
    """This process's environment without anything that could leak the source tree or Airflow config."""
    return {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AIRFLOW", "PYTHON", "PYTEST", "CONFLUENCE_", "VIRTUAL_ENV", "PIP_REQ"))
        and key.lower() not in ("http_proxy", "https_proxy", "all_proxy", "no_proxy")
    }


def run(argv: list[str], *, cwd: Path, env: dict[str, str] | None = None, timeout: float = 600) -> str:
    """Run a command to completion; its output, or a failure that shows the output."""
    completed = subprocess.run(
        argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    output = completed.stdout + completed.stderr
    if completed.returncode != 0:
        pytest.fail(f"{' '.join(argv[:4])}... exited {completed.returncode}:\n{output[-4000:]}")
    return output


# ------------------------------------------------------------------------------- build and install
@dataclass(frozen=True)
class Dist:
    sdist: Path
    wheel: Path
    version: str


@pytest.fixture(scope="session")
def dist(work: Path) -> Dist:
    """The sdist and the wheel, built by ``python -m build`` (sdist first, the wheel from the sdist)."""
    out = STATE / "dist"
    shutil.rmtree(out, ignore_errors=True)
    started = time.monotonic()
    build_log = run([sys.executable, "-m", "build", "--outdir", str(out), str(ROOT)], cwd=work)
    (work / "logs" / "build.log").write_text(build_log)
    sdists, wheels = sorted(out.glob("*.tar.gz")), sorted(out.glob("*.whl"))
    assert len(sdists) == 1, f"expected one sdist in {out}, found {sdists}"
    assert len(wheels) == 1, f"expected one wheel in {out}, found {wheels}"
    version = wheels[0].name.split("-")[1]
    log(f"built {sdists[0].name} and {wheels[0].name} in {time.monotonic() - started:.0f} s")
    return Dist(sdists[0], wheels[0], version)


@dataclass(frozen=True)
class Venv:
    path: Path

    @property
    def bin(self) -> Path:
        return self.path / "bin"

    @property
    def python(self) -> str:
        return str(self.bin / "python")

    @property
    def airflow(self) -> str:
        return str(self.bin / "airflow")


@pytest.fixture(scope="session")
def airflow_venv(dist: Dist, work: Path) -> Venv:
    """A new virtual environment holding the wheel (which pulls Airflow) and the PostgreSQL drivers."""
    venv = Venv(STATE / "airflow")
    started = time.monotonic()
    env = clean_env()
    if os.environ.get("INTEGRATION_REUSE_VENV") == "1" and Path(venv.airflow).exists():
        # a shortcut while working on the tier itself; `make test-integration` always starts afresh
        run(
            [
                venv.python,
                "-m",
                "pip",
                "install",
                "--quiet",
                "--force-reinstall",
                "--no-deps",
                str(dist.wheel),
            ],
            cwd=work,
            env=env,
        )
        log(f"REUSED venv {venv.path} (INTEGRATION_REUSE_VENV=1), wheel reinstalled")
        return venv
    shutil.rmtree(venv.path, ignore_errors=True)
    run([BASE_PYTHON, "-m", "venv", str(venv.path)], cwd=work)
    run([venv.python, "-m", "pip", "install", "--quiet", "--upgrade", "pip"], cwd=work, env=env)
    pins = [f"apache-airflow=={AIRFLOW_VERSION}"] if AIRFLOW_VERSION else []
    install_log = run(
        [venv.python, "-m", "pip", "install", str(dist.wheel), *pins, "psycopg2-binary", "asyncpg"],
        cwd=work,
        env=env,
        timeout=900,
    )
    (work / "logs" / "pip-install.log").write_text(install_log)
    log(f"fresh venv {venv.path}: wheel + apache-airflow installed in {time.monotonic() - started:.0f} s")
    return venv


# ------------------------------------------------------------------------------------- PostgreSQL
def _postgres_bin(name: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), key=lambda p: p.parts[-3])
    if not candidates:
        pytest.fail(f"PostgreSQL's {name} not found: install the server (Debian: apt-get install postgresql)")
    return str(candidates[-1])


@dataclass(frozen=True)
class Postgres:
    port: int
    url: str


@pytest.fixture(scope="session")
def postgres(processes: Processes, work: Path, run_id: str) -> Iterator[Postgres]:
    """A throw-away cluster: its own folder, a free port, trust auth on 127.0.0.1 only, no fsync."""
    if DATABASE == "sqlite":
        yield Postgres(0, f"sqlite:///{work / 'airflow.db'}")
        return
    user = "postgres" if os.geteuid() == 0 else None  # PostgreSQL refuses to run as root
    folder = Path(tempfile.mkdtemp(prefix=f"confluence-integration-pg-{run_id}-"))
    if user:
        shutil.chown(folder, user, user)
    port = free_port()
    run_as = ["runuser", "-u", user, "--"] if user else []
    run(
        [
            *run_as,
            _postgres_bin("initdb"),
            "-D",
            str(folder / "data"),
            "-U",
            "airflow",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-locale",
        ],
        cwd=folder,
    )
    env = clean_env()
    env["LC_ALL"] = "C"
    processes.start(
        "postgres",
        [
            _postgres_bin("postgres"),
            "-D",
            str(folder / "data"),
            "-p",
            str(port),
            "-k",
            str(folder),
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            "max_connections=300",
            "-c",
            "fsync=off",
            "-c",
            "synchronous_commit=off",
            "-c",
            "full_page_writes=off",
        ],
        env=env,
        cwd=folder,
        user=user,
    )
    url = f"postgresql+psycopg2://airflow@127.0.0.1:{port}/postgres"

    def accepting() -> bool:
        import socket

        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True

    wait_for(accepting, timeout=30, what="PostgreSQL to accept connections", interval=0.3)
    time.sleep(0.5)
    log(f"PostgreSQL on 127.0.0.1:{port} ({folder})")
    try:
        yield Postgres(port, url)
    finally:
        processes.stop("postgres", sig=signal.SIGINT)
        shutil.rmtree(folder, ignore_errors=True)


# ---------------------------------------------------------------------------------------- simulator
@pytest.fixture(scope="session")
def simulator(processes: Processes, airflow_venv: Venv, work: Path) -> Iterator[Simulator]:
    port_file = work / "simulator.port"
    sim = processes.start(
        "simulator",
        [
            airflow_venv.python,
            "-m",
            "airflow_provider_confluence.testing",
            "--port",
            "0",
            "--port-file",
            str(port_file),
            "--scenario",
            "demo",
        ],
        env=clean_env(),
        cwd=work,
    )

    def port() -> int | None:
        assert sim.alive(), f"the simulator exited:\n{sim.log_tail()}"
        text = port_file.read_text().strip() if port_file.exists() else ""
        return int(text) if text else None

    number = wait_for(port, timeout=30, what="the simulator's port file", interval=0.2)
    log(f"simulator on 127.0.0.1:{number}")
    try:
        yield Simulator(f"http://127.0.0.1:{number}", SIM_EMAIL, SIM_TOKEN)
    finally:
        processes.stop("simulator")


# ------------------------------------------------------------------------------------------ Airflow
@dataclass
class Deployment:
    api: AirflowApi
    sim: Simulator
    processes: Processes
    venv: Venv
    env: dict[str, str]
    home: Path
    work: Path
    api_port: int

    def start(self, name: str, argv: list[str]) -> None:
        self.processes.start(name, [self.venv.airflow, *argv], env=self.env, cwd=self.work)

    def start_triggerer(self) -> None:
        self.start("triggerer", ["triggerer", "--skip-serve-logs"])

    def assert_running(self) -> None:
        for name in ("api-server", "scheduler", "dag-processor", "triggerer", "simulator", "postgres"):
            started = self.processes.started.get(name)
            if started is None and name == "postgres" and DATABASE == "sqlite":
                continue
            assert started is not None, f"{name} was never started"
            assert started.alive(), f"{name} died:\n{started.log_tail()}"

    def health(self) -> dict[str, Any]:
        return dict(http("GET", f"{self.api.base_url}/api/v2/monitor/health", timeout=10))


def airflow_env(
    venv: Venv, home: Path, dags: Path, db_url: str, api_port: int, sim: Simulator
) -> dict[str, str]:
    env = clean_env()
    env["PATH"] = f"{venv.bin}{os.pathsep}{env.get('PATH', '/usr/bin:/bin')}"
    connection = {
        "conn_type": "confluence",
        "host": f"{sim.base_url}/wiki",
        "login": SIM_EMAIL,
        "password": SIM_TOKEN,
        "extra": {"deployment": "cloud"},
    }
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": "8",
            "AIRFLOW__CORE__FERNET_KEY": base64.urlsafe_b64encode(os.urandom(32)).decode(),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{api_port}/execution/",
            "AIRFLOW__CORE__AUTH_MANAGER": (
                "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
            ),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": db_url,
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(api_port),
            "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{api_port}",
            "AIRFLOW__API__SECRET_KEY": secrets.token_hex(16),
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(32),
            # the log servers would listen on every interface: components share AIRFLOW_HOME's logs
            # instead (scheduler and triggerer run with --skip-serve-logs); ports set for safety
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__LOGGING__COLORED_CONSOLE_LOG": "False",
            # scheduled runs of the example DAGs would race the runs the tests trigger
            "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD": "15",
            "AIRFLOW_CONN_CONFLUENCE_DEFAULT": json.dumps(connection),
            "CONFLUENCE_EXAMPLE_POLL_SECONDS": POLL_SECONDS,
        }
    )
    return env


@pytest.fixture(scope="session")
def deployment(
    processes: Processes, airflow_venv: Venv, postgres: Postgres, simulator: Simulator, work: Path
) -> Iterator[Deployment]:
    home, dags = work / "airflow", work / "dags"
    home.mkdir()
    dags.mkdir()
    # the DAGs a user would deploy: the example DAGs as documented, and this tier's own
    for source in sorted((ROOT / "example_dags").glob("*.py")) + sorted((HERE / "dags").glob("*.py")):
        shutil.copy2(source, dags / source.name)
    api_port = free_port()
    env = airflow_env(airflow_venv, home, dags, postgres.url, api_port, simulator)
    started = time.monotonic()
    migrate = run([airflow_venv.airflow, "db", "migrate"], cwd=work, env=env)
    (work / "logs" / "db-migrate.log").write_text(migrate)
    log(f"metadata database migrated in {time.monotonic() - started:.0f} s")
    api = AirflowApi(f"http://127.0.0.1:{api_port}")
    dep = Deployment(api, simulator, processes, airflow_venv, env, home, work, api_port)
    dep.start("api-server", ["api-server", "--host", "127.0.0.1", "--port", str(api_port), "--workers", "1"])
    dep.start("scheduler", ["scheduler", "--skip-serve-logs"])
    dep.start("dag-processor", ["dag-processor"])
    dep.start_triggerer()

    def healthy() -> bool:
        dep.assert_running()
        health = dep.health()
        return all(
            health.get(part, {}).get("status") == "healthy"
            for part in ("metadatabase", "scheduler", "triggerer", "dag_processor")
        )

    try:
        wait_for(
            healthy, timeout=180, what="api-server, scheduler, triggerer and dag-processor to be healthy"
        )
        log(f"Airflow healthy at {api.base_url} after {time.monotonic() - started:.0f} s")
        yield dep
    finally:  # Airflow first, while its database is still up
        processes.stop_many(AIRFLOW_COMPONENTS)


@pytest.fixture(scope="session")
def dags_ready(deployment: Deployment) -> Deployment:
    """Every DAG parsed, free of import errors, and unpaused (through the REST API)."""
    expected = {p.stem for p in (ROOT / "example_dags").glob("*.py")} | {
        p.stem for p in (HERE / "dags").glob("*.py")
    }
    api = deployment.api

    def parsed() -> bool:
        errors = api.get("/api/v2/importErrors")
        assert not errors["import_errors"], f"DAG import errors: {errors['import_errors']}"
        files = {Path(d["fileloc"]).stem for d in api.get("/api/v2/dags", limit=100)["dags"]}
        return expected <= files

    wait_for(parsed, timeout=180, what=f"the DAG files {sorted(expected)} to be parsed", interval=2)
    for dag in api.get("/api/v2/dags", limit=100)["dags"]:
        api.patch(f"/api/v2/dags/{dag['dag_id']}", {"is_paused": False})
    return deployment
