"""Command line of the simulator: ``python -m airflow_provider_confluence.testing --port 8090``."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import os
import signal
import sys
import tempfile
from pathlib import Path

from airflow_provider_confluence.testing.models import FAULT_KINDS
from airflow_provider_confluence.testing.scenarios import SCENARIOS, ScenarioTask, load_scenario
from airflow_provider_confluence.testing.server import (
    DEFAULT_RANDOM_FAULT_KINDS,
    ConfluenceSimulator,
    is_loopback_host,
)

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m airflow_provider_confluence.testing",
        description="Run a local Confluence that answers the long-running task API (for demos and tests).",
    )
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default 127.0.0.1); only loopback unless --allow-remote",
    )
    parser.add_argument("--port", type=int, default=8090, help="TCP port (default 8090; 0 picks a free one)")
    parser.add_argument(
        "--allow-remote",
        action="store_true",
        help="allow a non-loopback --host; anyone who can reach it can use the demo credentials",
    )
    parser.add_argument(
        "--email", default="demo@example.com", help="basic-auth user (default demo@example.com)"
    )
    parser.add_argument(
        "--token", default="sim-token", help="API token for basic auth, also the bearer token"
    )
    parser.add_argument("--bearer-token", default=None, help="accept this bearer token instead of --token")
    parser.add_argument(
        "--context-path", default="/confluence", help="Data Center context path (default /confluence)"
    )
    parser.add_argument(
        "--scenario", choices=SCENARIOS, default="demo", help="tasks to create at start (default demo)"
    )
    parser.add_argument(
        "--port-file",
        type=Path,
        default=None,
        help="write the bound port to this file once listening (removed on exit)",
    )
    parser.add_argument(
        "--fault-rate", type=float, default=0.0, help="chance (0..1) of a random fault on each status GET"
    )
    parser.add_argument(
        "--fault-kinds",
        default=",".join(DEFAULT_RANDOM_FAULT_KINDS),
        help=f"comma-separated random fault kinds (of {', '.join(sorted(FAULT_KINDS))})",
    )
    parser.add_argument("--seed", type=int, default=None, help="seed for reproducible random faults")
    parser.add_argument("--access-log", action="store_true", help="log every request to stderr")
    return parser


def _port_file_folder(path: Path) -> Path:
    return path.parent if str(path.parent) else Path()


def port_file_problem(path: Path) -> str | None:
    """Why the port can't be written to ``path`` (checked before binding), or None if it can."""
    folder = _port_file_folder(path)
    if path.is_dir():
        return f"--port-file {path} is a directory"
    if not folder.exists():
        return f"--port-file {path}: the folder {folder} does not exist"
    if not folder.is_dir():
        return f"--port-file {path}: {folder} is not a folder"
    try:  # os.access would say yes to root even in a read-only folder: try it for real
        fd, probe = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    except OSError as exc:
        return f"--port-file {path}: cannot write to the folder {folder}: {exc.strerror or exc}"
    os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(probe)
    return None


def fault_kinds_problem(kinds: list[str]) -> str | None:
    """Why ``--fault-kinds`` is unusable (checked even when ``--fault-rate`` is 0), or None."""
    valid = ", ".join(sorted(FAULT_KINDS))
    unknown = [kind for kind in kinds if kind not in FAULT_KINDS]
    if unknown:
        return f"unknown fault kinds in --fault-kinds: {', '.join(unknown)} (valid kinds: {valid})"
    if not kinds:
        return f"--fault-kinds needs at least one fault kind (valid kinds: {valid})"
    return None


def _parse_fault_kinds(text: str) -> list[str]:
    return [kind.strip() for kind in text.split(",") if kind.strip()]


def is_wildcard_host(host: str) -> bool:
    """True for the "all interfaces" addresses (0.0.0.0, ::), which are no place to connect to."""
    try:
        return ipaddress.ip_address(host.strip("[]")).is_unspecified
    except ValueError:
        return False


def _example_url(sim: ConfluenceSimulator, url: str) -> str:
    """``url`` as a client can use it: a wildcard listen address (0.0.0.0, ::) becomes 127.0.0.1."""
    if is_wildcard_host(sim.host):
        return url.replace(sim.url, f"http://127.0.0.1:{sim.port}", 1)
    return url


def write_port_file(path: Path, port: int) -> None:
    """Write ``port`` to ``path`` atomically (a temporary file in the same folder, then a rename)."""
    folder = _port_file_folder(path)
    fd, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(f"{port}\n")
        os.replace(temp_name, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp_name)
        raise


def banner(sim: ConfluenceSimulator, scenario: str, tasks: list[ScenarioTask]) -> str:
    bearer = sim.bearer_token or sim.api_token
    lines = [
        f"Confluence simulator listening on {sim.url}",
        f"  Cloud base URL        {sim.cloud_url}",
        f"  Data Center base URL  {sim.datacenter_url}",
        f"  API gateway form      {sim.url}/ex/confluence/<any-cloud-id>/wiki",
        f"  Basic auth            user {sim.email}  token {sim.api_token}",
        f"  Bearer auth           Authorization: Bearer {bearer}",
        f"  Control API (no auth) {sim.url}/_simulator/health  /tasks  /stats  /faults",
        "",
    ]
    if tasks:
        lines.append(f'Scenario "{scenario}" (each task starts at its first status GET):')
        lines.extend(f"  {task.task_id}  {task.description}" for task in tasks)
        status_url = _example_url(sim, sim.status_url(tasks[0].task_id))
        lines += ["", f"Try: curl -u {sim.email}:{sim.api_token} {status_url}"]
    else:
        lines.append(f'Scenario "{scenario}": no tasks yet; create one with')
        control_url = _example_url(sim, f"{sim.url}/_simulator/tasks")
        lines.append(f"  curl -X POST -d '{{\"duration\": 10}}' {control_url}")
    lines.append("Stop with Ctrl+C (SIGINT) or SIGTERM.")
    return "\n".join(lines)


async def serve(args: argparse.Namespace) -> int:
    kinds = _parse_fault_kinds(args.fault_kinds)
    sim = ConfluenceSimulator(
        email=args.email,
        api_token=args.token,
        bearer_token=args.bearer_token,
        host=args.host,
        port=args.port,
        context_path=args.context_path,
        allow_remote=args.allow_remote,
        access_log=args.access_log,
    )
    if args.fault_rate:
        sim.set_fault_rate(args.fault_rate, kinds, seed=args.seed)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        try:
            await sim.astart()
        except OSError as exc:
            print(f"error: cannot listen on {args.host}:{args.port}: {exc.strerror or exc}", file=sys.stderr)
            return 1
        try:
            tasks = load_scenario(sim, args.scenario)
            print(banner(sim, args.scenario, tasks), flush=True)
            if args.port_file is not None:
                try:
                    write_port_file(args.port_file, sim.port)
                except OSError as exc:  # checked before binding, but the folder may have changed since
                    print(
                        f"error: cannot write --port-file {args.port_file}: {exc.strerror or exc}",
                        file=sys.stderr,
                    )
                    return 1
            await stop.wait()
            served = sim.stats.total_requests
        finally:
            await sim.astop()
            if args.port_file is not None:
                with contextlib.suppress(OSError):
                    args.port_file.unlink()
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
    print(f"Confluence simulator stopped after {served} requests.", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.allow_remote and not is_loopback_host(args.host):
        parser.error(
            f"refusing --host {args.host}: the simulator only listens on loopback addresses (127.0.0.1, ::1, "
            "localhost) because its demo credentials are public; pass --allow-remote to listen elsewhere"
        )
    if not 0 <= args.port <= 65535:
        parser.error(f"--port must be between 0 and 65535, got {args.port}")
    problem = fault_kinds_problem(_parse_fault_kinds(args.fault_kinds))
    if problem is None and args.port_file is not None:
        problem = port_file_problem(args.port_file)
    if problem is not None:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    try:
        return asyncio.run(serve(args))
    except ValueError as exc:  # bad --context-path, --fault-rate, --fault-kinds, ...
        print(f"error: {exc}", file=sys.stderr)
        return 2
