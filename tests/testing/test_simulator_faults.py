"""Injected and random faults: each kind, and how they are matched, counted and reproduced."""

from __future__ import annotations

import base64
import json
import time

import aiohttp
import pytest
import requests

from airflow_provider_confluence.testing import ConfluenceSimulator, Fault, TaskSpec

EMAIL = "demo@example.com"
TOKEN = "sim-token"


@pytest.fixture
def task_id(sim):
    return sim.add_task(TaskSpec(duration=0))


def test_429_sends_retry_after_and_rate_limit_headers(sim, api, task_id):
    sim.inject(Fault("429"))

    response = api.status(task_id)

    assert response.status_code == 429
    assert response.headers["Retry-After"] == "1"
    assert response.headers["X-RateLimit-Remaining"] == "0"
    assert response.json()["statusCode"] == 429
    assert api.status(task_id).status_code == 200, "a fault with times=1 applies once"


@pytest.mark.parametrize(
    "retry_after",
    ["7", "Wed, 21 Oct 2015 07:28:00 GMT", "soon-ish", ""],
    ids=["seconds", "http-date", "garbage", "empty"],
)
def test_429_sends_retry_after_exactly_as_given(sim, api, task_id, retry_after):
    sim.inject(Fault("429", retry_after=retry_after))

    response = api.status(task_id)

    assert response.status_code == 429
    assert response.headers["Retry-After"] == retry_after


@pytest.mark.parametrize(
    ("kind", "content_type"),
    [
        ("403", "application/json"),
        ("500", "application/json"),
        ("502", "text/html"),
        ("503", "application/json"),
        ("504", "text/html"),
    ],
    ids=["403", "500", "502-proxy-html", "503", "504-proxy-html"],
)
def test_error_status_faults(sim, api, task_id, kind, content_type):
    sim.inject(Fault(kind))

    response = api.status(task_id)

    assert response.status_code == int(kind)
    assert response.headers["Content-Type"].startswith(content_type)
    if content_type == "application/json":
        assert response.json()["statusCode"] == int(kind)


def test_503_carries_retry_after_only_when_given(sim, api, task_id):
    sim.inject(Fault("503"))
    sim.inject(Fault("503", retry_after="2"))

    plain, with_header = api.status(task_id), api.status(task_id)

    assert (plain.status_code, with_header.status_code) == (503, 503)
    assert "Retry-After" not in plain.headers
    assert with_header.headers["Retry-After"] == "2"


def test_html_fault_is_a_200_login_page(sim, api, task_id):
    sim.inject(Fault("html"))

    response = api.status(task_id)

    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/html")
    assert response.text.lstrip().lower().startswith("<!doctype html>")
    assert "Log in" in response.text
    with pytest.raises(json.JSONDecodeError):
        json.loads(response.text)


def test_slow_fault_answers_normally_after_the_delay(sim, api, task_id):
    sim.inject(Fault("slow", delay=0.3))

    started = time.monotonic()
    response = api.status(task_id)
    took = time.monotonic() - started

    assert took >= 0.3
    assert response.status_code == 200
    assert response.json()["id"] == task_id


def test_reset_fault_drops_the_connection(sim, api, task_id):
    sim.inject(Fault("reset"))

    with pytest.raises(requests.ConnectionError):
        api.status(task_id)
    assert api.status(task_id).status_code == 200
    assert sim.stats.faults_by_kind == {"reset": 1}
    assert 500 not in sim.stats.responses_by_status, "a dropped connection has no status"


async def test_reset_fault_is_a_disconnect_for_aiohttp(sim, task_id):
    # aiohttp retries an idempotent request once when the connection drops, so it takes two resets
    # in a row for an aiohttp client to see one.
    sim.inject(Fault("reset", times=2))
    headers = {"Authorization": "Basic " + base64.b64encode(f"{EMAIL}:{TOKEN}".encode()).decode()}

    async with aiohttp.ClientSession(headers=headers) as session:
        with pytest.raises(aiohttp.ClientConnectionError):
            async with session.get(sim.status_url(task_id)) as response:
                await response.read()
        async with session.get(sim.status_url(task_id)) as response:
            assert response.status == 200
    assert sim.stats.faults_by_kind == {"reset": 2}


def test_redirect_fault_points_at_an_sso_host(sim, api, task_id):
    sim.inject(Fault("redirect"))

    response = api.status(task_id, allow_redirects=False)

    assert response.status_code == 302
    assert response.headers["Location"].startswith("https://sso.example.invalid/login?")


def test_empty_fault_is_a_200_without_body(sim, api, task_id):
    sim.inject(Fault("empty"))

    response = api.status(task_id)

    assert response.status_code == 200
    assert response.content == b""


def test_truncated_fault_cuts_the_json(sim, api, task_id):
    whole = api.status(task_id).content
    sim.inject(Fault("truncated"))

    response = api.status(task_id)

    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    assert 0 < len(response.content) < len(whole)
    assert whole.startswith(response.content)
    with pytest.raises(json.JSONDecodeError):
        json.loads(response.content)


def test_list_fault_answers_a_json_array(sim, api, task_id):
    sim.inject(Fault("list"))

    response = api.status(task_id)

    assert response.status_code == 200
    assert isinstance(response.json(), list)


def test_times_and_after_select_which_requests_fail(sim, api, task_id):
    sim.inject(Fault("500", times=2, after=1))

    codes = [api.status(task_id).status_code for _ in range(4)]

    assert codes == [200, 500, 500, 200]


def test_faults_apply_in_the_order_injected(sim, api, task_id):
    sim.inject(Fault("429"))
    sim.inject(Fault("503", times=2))

    codes = [api.status(task_id).status_code for _ in range(4)]

    assert codes == [429, 503, 503, 200]


def test_task_id_limits_a_fault_to_one_task(sim, api, task_id):
    other = sim.add_task(TaskSpec(duration=0))
    sim.inject(Fault("503", task_id=task_id))

    assert api.status(other).status_code == 200
    assert api.status(task_id).status_code == 503


def test_fault_without_task_id_hits_any_status_get_even_unknown_ids(sim, api):
    sim.inject(Fault("500"))

    assert api.status("31337").status_code == 500
    assert api.status("31337").status_code == 404


def test_status_faults_leave_lists_and_operations_alone(sim, api, task_id):
    sim.inject(Fault("500", times=5))

    assert api.get("/wiki/rest/api/longtask").status_code == 200
    assert api.request("DELETE", "/wiki/rest/api/space/X").status_code == 202
    assert api.status(task_id).status_code == 500


@pytest.mark.parametrize(
    ("endpoint", "method", "path"),
    [
        ("list", "GET", "/wiki/rest/api/longtask"),
        ("start", "DELETE", "/wiki/rest/api/space/DEMO"),
        ("any", "DELETE", "/confluence/rest/api/content/1/pageTree"),
    ],
    ids=["list", "start", "any"],
)
def test_endpoint_targets_other_requests(sim, api, endpoint, method, path):
    sim.inject(Fault("503", endpoint=endpoint))

    faulted = api.request(method, path)
    again = api.request(method, path)

    assert faulted.status_code == 503
    assert again.status_code in (200, 202)
    assert len(sim.task_ids) == (1 if method == "DELETE" else 0), "a faulted start request starts no task"


def test_truncated_and_list_faults_on_the_task_list(sim, api, task_id):
    sim.inject(Fault("truncated", endpoint="list"))
    sim.inject(Fault("list", endpoint="list"))

    truncated = api.get("/wiki/rest/api/longtask")
    as_list = api.get("/wiki/rest/api/longtask")

    with pytest.raises(json.JSONDecodeError):
        json.loads(truncated.content)
    assert isinstance(as_list.json(), list)


def test_clear_faults_drops_queued_faults_and_the_rate(sim, api, task_id):
    sim.inject(Fault("500", times=10))
    sim.set_fault_rate(1.0, kinds=["503"])

    sim.clear_faults()

    assert api.status(task_id).status_code == 200


def status_codes(seed: int, count: int = 40) -> list[int]:
    with ConfluenceSimulator() as sim, requests.Session() as session:
        session.auth = (EMAIL, TOKEN)
        task_id = sim.add_task(TaskSpec(duration=0))
        sim.set_fault_rate(0.5, kinds=("429", "500", "503"), seed=seed)
        return [session.get(sim.status_url(task_id), timeout=5).status_code for _ in range(count)]


def test_random_faults_are_reproducible_with_a_seed():
    first, again, other = status_codes(seed=7), status_codes(seed=7), status_codes(seed=8)

    assert first == again
    assert first != other
    assert set(first) == {200, 429, 500, 503}


def test_random_faults_hit_only_status_gets(sim, api, task_id):
    sim.set_fault_rate(1.0, kinds=["500"], seed=1)

    assert api.status(task_id).status_code == 500
    assert api.get("/wiki/rest/api/longtask").status_code == 200
    assert api.request("DELETE", "/wiki/rest/api/space/X").status_code == 202
    assert sim.stats.faults_by_kind == {"500": 1}


def test_random_slow_and_reset_faults(sim, api, task_id):
    sim.set_fault_rate(1.0, kinds=["slow"], seed=1, delay=0.2)
    started = time.monotonic()
    assert api.status(task_id).status_code == 200
    assert time.monotonic() - started >= 0.2

    sim.set_fault_rate(1.0, kinds=["reset"], seed=1)
    with pytest.raises(requests.ConnectionError):
        api.status(task_id)


def test_injected_faults_are_counted_by_kind(sim, api, task_id):
    for kind in ("429", "html", "empty", "429"):
        sim.inject(Fault(kind))

    for _ in range(5):
        api.status(task_id)

    assert sim.stats.faults_by_kind == {"429": 2, "html": 1, "empty": 1}
    assert sim.stats.responses_by_status == {429: 2, 200: 3}


@pytest.mark.parametrize(
    ("rate", "kinds", "seed", "field"),
    [
        pytest.param(1.5, ("500",), None, "rate", id="rate-above-1"),
        pytest.param(-0.1, ("500",), None, "rate", id="negative-rate"),
        pytest.param(True, ("500",), None, "rate", id="bool-rate"),
        pytest.param(0.5, ("418",), None, "kinds", id="unknown-kind"),
        pytest.param(0.5, (), None, "kinds", id="no-kinds"),
        pytest.param(0.5, ("500",), "7", "seed", id="string-seed"),
    ],
)
def test_set_fault_rate_rejects_bad_values(sim, rate, kinds, seed, field):
    with pytest.raises(ValueError, match=field):
        sim.set_fault_rate(rate, kinds=kinds, seed=seed)
