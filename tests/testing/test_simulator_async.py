"""The async form: ``async with ConfluenceSimulator()`` serves on the running event loop."""

from __future__ import annotations

import asyncio
import base64
import threading
import time

import aiohttp
import pytest

from airflow_provider_confluence.testing import ConfluenceSimulator, Fault, TaskSpec

BASIC = {"Authorization": "Basic " + base64.b64encode(b"demo@example.com:sim-token").decode()}


async def get_json(session: aiohttp.ClientSession, url: str) -> tuple[int, dict]:
    async with session.get(url) as response:
        return response.status, await response.json(content_type=None)


@pytest.mark.asyncio
async def test_async_form_serves_on_the_running_loop_and_closes():
    threads_before = threading.active_count()
    async with ConfluenceSimulator() as sim:
        assert threading.active_count() == threads_before, "the async form starts no thread"
        task_id = sim.add_task(TaskSpec(duration=0.2, shape="datacenter"))
        url = sim.status_url(task_id, deployment="datacenter")
        async with aiohttp.ClientSession(headers=BASIC) as session:
            status, first = await get_json(session, url)
            await asyncio.sleep(0.25)
            _, last = await get_json(session, url)
        port = sim.port

    assert status == 200
    assert first["percentageComplete"] < 100
    assert last["percentageComplete"] == 100
    assert "finished" not in last
    with pytest.raises(RuntimeError, match="not running"):
        _ = sim.port
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.ClientConnectorError):
            await session.get(f"http://127.0.0.1:{port}/_simulator/health")


@pytest.mark.asyncio
async def test_async_form_has_the_same_api():
    async with ConfluenceSimulator(bearer_token="pat-1", context_path="/kb") as sim:
        task_id = sim.add_task(TaskSpec(duration=0))
        sim.inject(Fault("429", retry_after="2"))
        async with aiohttp.ClientSession(headers={"Authorization": "Bearer pat-1"}) as session:
            async with session.get(f"{sim.datacenter_url}/rest/api/longtask/{task_id}") as limited:
                retry_after = limited.headers["Retry-After"]
            status, body = await get_json(session, f"{sim.datacenter_url}/rest/api/longtask/{task_id}")

    assert (limited.status, retry_after) == (429, "2")
    assert (status, body["id"]) == (200, task_id)
    assert sim.stats.responses_by_status == {429: 1, 200: 1}


@pytest.mark.asyncio
async def test_starting_twice_is_refused():
    async with ConfluenceSimulator() as sim:
        with pytest.raises(RuntimeError, match="already running"):
            await sim.astart()
        with pytest.raises(RuntimeError, match="already running"):
            sim.start()


@pytest.mark.asyncio
async def test_many_concurrent_pollers():
    pollers_per_task, tasks = 4, 50
    async with ConfluenceSimulator() as sim:
        ids = [sim.add_task(TaskSpec(duration=0.3)) for _ in range(tasks)]
        requests_made = 0

        async def poll(session: aiohttp.ClientSession, task_id: str) -> dict:
            nonlocal requests_made
            while True:
                requests_made += 1
                status, body = await get_json(session, sim.status_url(task_id))
                assert status == 200
                if body["finished"]:
                    return body
                await asyncio.sleep(0.05)

        started = time.monotonic()
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(headers=BASIC, connector=connector) as session:
            finals = await asyncio.gather(
                *(poll(session, task_id) for task_id in ids for _ in range(pollers_per_task))
            )
        took = time.monotonic() - started
        stats = sim.stats

    assert len(finals) == tasks * pollers_per_task
    assert all(body["successful"] for body in finals)
    assert took < 5
    assert stats.total_requests == requests_made
    assert sum(stats.requests_by_task.values()) == requests_made
    for task_id in ids:
        task = stats.tasks[task_id]
        assert task.final_status_served_at is not None
        assert task.finished_at is not None
        assert task.final_status_served_at >= task.finished_at
