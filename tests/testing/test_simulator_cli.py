"""``python -m airflow_provider_confluence.testing``: banner, port file, demo tasks, clean exit on signals."""

from __future__ import annotations

import os
import select
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from airflow_provider_confluence.testing import DEMO_TASK_IDS, ConfluenceSimulator
from airflow_provider_confluence.testing.cli import banner
from airflow_provider_confluence.testing.scenarios import load_scenario

REPO_ROOT = Path(__file__).resolve().parents[2]
AUTH = ("demo@example.com", "sim-token")


def launch(*args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "PYTHONUNBUFFERED": "0"}
    return subprocess.Popen(
        [sys.executable, "-W", "error::ResourceWarning", "-m", "airflow_provider_confluence.testing", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def wait_for_port(proc: subprocess.Popen[str], port_file: Path, timeout: float = 20.0) -> int:
    deadline = time.monotonic() + timeout
    while not port_file.exists():
        assert proc.poll() is None, f"simulator exited early: {proc.communicate()}"
        assert time.monotonic() < deadline, "the port file never appeared"
        time.sleep(0.05)
    return int(port_file.read_text())


def finish(proc: subprocess.Popen[str], signum: int) -> tuple[int, str, str]:
    proc.send_signal(signum)
    stdout, stderr = proc.communicate(timeout=15)
    return proc.returncode, stdout, stderr


def port_is_closed(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0


@pytest.fixture
def running_procs():
    procs: list[subprocess.Popen[str]] = []
    yield procs
    for proc in procs:  # never leave a simulator behind, even when a test fails
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=10)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["sigterm", "sigint"])
def test_demo_scenario_runs_until_a_signal_and_exits_cleanly(tmp_path, running_procs, signum):
    port_file = tmp_path / "sim.port"
    proc = launch("--port", "0", "--port-file", str(port_file), "--scenario", "demo")
    running_procs.append(proc)

    port = wait_for_port(proc, port_file)
    ready, _, _ = select.select([proc.stdout], [], [], 5)
    early_output = os.read(proc.stdout.fileno(), 65536).decode() if ready else ""  # unbuffered: see flush
    with requests.Session() as session:
        session.auth = AUTH
        export = session.get(f"http://127.0.0.1:{port}/wiki/rest/api/longtask/880001", timeout=5).json()
        deletion = session.get(
            f"http://127.0.0.1:{port}/confluence/rest/api/longtask/880002", timeout=5
        ).json()
        copy = session.get(f"http://127.0.0.1:{port}/wiki/rest/api/longtask/880003", timeout=5).json()
    code, stdout, stderr = finish(proc, signum)

    assert early_output.startswith(f"Confluence simulator listening on http://127.0.0.1:{port}"), (
        "banner is flushed"
    )
    assert export["id"] == "880001"
    assert export["elapsedTime"] < 1000, "demo tasks start at their first poll"
    assert export["additionalDetails"] == {
        "destinationUrl": f"http://127.0.0.1:{port}/wiki/download/temp/export-880001.zip"
    }
    assert deletion["id"] == "880002"
    assert copy["additionalDetails"]["totalPageNeedToCopy"] == 10
    assert code == 0, stderr
    banner = early_output + stdout
    for task_id in DEMO_TASK_IDS:
        assert task_id in banner
    assert f"http://127.0.0.1:{port}/wiki" in banner
    assert "demo@example.com" in banner
    assert "Traceback" not in stderr
    assert "ResourceWarning" not in stderr
    assert "Unclosed" not in stderr
    assert not port_file.exists(), "the port file is removed on exit"
    assert list(tmp_path.iterdir()) == [], "no temporary files are left behind"
    assert port_is_closed(port)


def test_empty_scenario_with_random_faults(tmp_path, running_procs):
    port_file = tmp_path / "port"
    proc = launch(
        "--port",
        "0",
        "--port-file",
        str(port_file),
        "--scenario",
        "empty",
        "--fault-rate",
        "1",
        "--fault-kinds",
        "503",
        "--seed",
        "1",
        "--context-path",
        "/kb",
    )
    running_procs.append(proc)

    port = wait_for_port(proc, port_file)
    with requests.Session() as session:
        created = session.post(
            f"http://127.0.0.1:{port}/_simulator/tasks", json={"duration": 0}, timeout=5
        ).json()
        listed = session.get(f"http://127.0.0.1:{port}/kb/rest/api/longtask", auth=AUTH, timeout=5).json()
        faulted = session.get(created["status_url"], auth=AUTH, timeout=5)
    code, stdout, _ = finish(proc, signal.SIGTERM)

    assert [item["id"] for item in listed["results"]] == [created["id"]], (
        "the empty scenario starts with no tasks"
    )
    assert faulted.status_code == 503
    assert code == 0
    assert "no tasks yet" in stdout


@pytest.mark.parametrize("host", ["0.0.0.0", "192.0.2.10"])
def test_non_loopback_host_is_refused_without_allow_remote(running_procs, host):
    proc = launch("--host", host, "--port", "0")
    running_procs.append(proc)

    _, stderr = proc.communicate(timeout=15)

    assert proc.returncode == 2
    assert f"refusing --host {host}" in stderr
    assert "--allow-remote" in stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(
            ["--fault-rate", "0.5", "--fault-kinds", "teapot"], "fault kinds", id="unknown-fault-kind"
        ),
        pytest.param(["--fault-rate", "3"], "fault rate", id="fault-rate-above-1"),
        pytest.param(["--context-path", "/wiki"], "context_path", id="colliding-context-path"),
        pytest.param(["--port", "70000"], "--port", id="port-out-of-range"),
    ],
)
def test_bad_options_exit_2_with_a_message(running_procs, args, message):
    proc = launch(*args)
    running_procs.append(proc)

    _, stderr = proc.communicate(timeout=15)

    assert proc.returncode == 2
    assert message in stderr
    assert "Traceback" not in stderr


@pytest.mark.parametrize("problem", ["missing-folder", "folder-is-a-file", "port-file-is-a-folder"])
def test_unusable_port_file_exits_2_before_listening(tmp_path, running_procs, problem):
    if problem == "missing-folder":
        port_file, folder = tmp_path / "missing" / "port", tmp_path / "missing"
    elif problem == "folder-is-a-file":
        folder = tmp_path / "plain-file"
        folder.write_text("")
        port_file = folder / "port"
    else:
        port_file = folder = tmp_path
    proc = launch("--port", "0", "--port-file", str(port_file))
    running_procs.append(proc)

    stdout, stderr = proc.communicate(timeout=15)

    assert proc.returncode == 2
    assert stdout == "", "checked before binding: no listening banner"
    assert stderr.startswith("error: --port-file ")
    assert str(folder) in stderr
    assert len(stderr.strip().splitlines()) == 1, stderr
    assert "Traceback" not in stderr


def test_unknown_fault_kinds_are_refused_even_without_a_fault_rate(running_procs):
    proc = launch("--port", "0", "--fault-kinds", "418,503,bogus")
    running_procs.append(proc)

    stdout, stderr = proc.communicate(timeout=15)

    assert proc.returncode == 2
    assert stdout == ""
    assert "418, bogus" in stderr, "names the unknown kinds"
    assert "valid kinds: 403, 429, 500, 502, 503, 504, empty, html" in stderr, "lists the valid ones"
    assert "Traceback" not in stderr


@pytest.mark.parametrize("host", ["0.0.0.0", "::"])
@pytest.mark.parametrize("scenario", ["demo", "empty"])
def test_banner_examples_use_loopback_for_a_wildcard_host(host, scenario):
    try:
        sim = ConfluenceSimulator(host=host, allow_remote=True).start()
    except OSError as exc:
        pytest.skip(f"cannot listen on {host}: {exc}")
    try:
        listening_on, port = sim.url, sim.port
        text = banner(sim, scenario, load_scenario(sim, scenario))
        examples = [line for line in text.splitlines() if "curl" in line]
        suggested = examples[-1].split()[-1] if examples else ""
        answer = requests.post(suggested, json={"duration": 0}, timeout=5) if scenario == "empty" else None
    finally:
        sim.stop()

    assert text.startswith(f"Confluence simulator listening on {listening_on}\n"), "the real address"
    assert examples, text
    for line in examples:
        assert f"http://127.0.0.1:{port}/" in line
        assert "0.0.0.0" not in line
        assert "[::]" not in line
    if answer is not None:
        assert answer.status_code == 201, "the suggested URL reaches the simulator"


def test_taken_port_exits_1_with_a_message(running_procs):
    with ConfluenceSimulator() as sim:
        port = sim.port
        proc = launch("--port", str(port))
        running_procs.append(proc)
        _, stderr = proc.communicate(timeout=15)

    assert proc.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in stderr
    assert "Traceback" not in stderr


def test_help_documents_the_options(running_procs):
    proc = launch("--help")
    running_procs.append(proc)

    stdout, _ = proc.communicate(timeout=15)

    assert proc.returncode == 0
    for option in (
        "--port",
        "--host",
        "--allow-remote",
        "--port-file",
        "--scenario",
        "--fault-rate",
        "--seed",
    ):
        assert option in stdout
