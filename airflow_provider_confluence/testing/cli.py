"""Command line of the simulator: ``python -m airflow_provider_confluence.testing --port 8090``."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
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


def write_port_file(path: Path, port: int) -> None:
    """Write ``port`` to ``path`` atomically (a temporary file in the same folder, then a rename)."""
    folder = path.parent if str(path.parent) else Path()
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
        lines += [
            "",
            f"Try: curl -u {sim.email}:{sim.api_token} {sim.status_url(tasks[0].task_id)}",
        ]
    else:
        lines.append(f'Scenario "{scenario}": no tasks yet; create one with')
        lines.append(f"  curl -X POST -d '{{\"duration\": 10}}' {sim.url}/_simulator/tasks")
    lines.append("Stop with Ctrl+C (SIGINT) or SIGTERM.")
    return "\n".join(lines)


async def serve(args: argparse.Namespace) -> int:
    kinds = [kind.strip() for kind in args.fault_kinds.split(",") if kind.strip()]
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
                write_port_file(args.port_file, sim.port)
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
    try:
        return asyncio.run(serve(args))
    except ValueError as exc:  # bad --context-path, --fault-rate, --fault-kinds, ...
        print(f"error: {exc}", file=sys.stderr)
        return 2
