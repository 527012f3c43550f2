"""
The connection UI: the API server's connection metadata, connections created and tested through the
REST API (``[core] test_connection = Enabled``), and the add-connection form in headless Chromium.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from typing import TYPE_CHECKING, Any

import pytest
from harness import HttpError

if TYPE_CHECKING:
    from pathlib import Path

    from conftest import Deployment

CHROMIUM = os.environ.get("INTEGRATION_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
LABELS = {
    "host": "Site or base URL",
    "login": "Account e-mail (Cloud basic auth)",
    "password": "API token / personal access token / OAuth token",
}
PLACEHOLDERS = {
    "host": "https://example.atlassian.net  or  https://wiki.example.com/confluence",
    "login": "you@example.com (leave empty for a Data Center PAT or OAuth token)",
    "password": "Cloud API token, Data Center PAT, or OAuth 2.0 access token",
}
EXTRA_LABELS = {
    "deployment": "Deployment",
    "auth_type": "Authentication",
    "cloud_id": "Cloud ID",
    "verify_ssl": "Verify TLS certificates",
    "timeout": "Request timeout (seconds)",
    "proxy": "HTTP(S) proxy URL",
}


def confluence_meta(dep: Deployment) -> dict[str, Any]:
    # Airflow 3.3 serves the form metadata on the UI API, /ui/connections/hook_meta (there is no
    # /api/v2/connections/hook_meta: that path is the connection called "hook_meta")
    meta = dep.api.get("/ui/connections/hook_meta")
    ours = [m for m in meta if m["connection_type"] == "confluence"]
    assert len(ours) == 1, [m["connection_type"] for m in meta]
    return dict(ours[0])


def test_hook_meta_lists_the_confluence_type_with_fields_labels_and_placeholders(
    deployment: Deployment,
) -> None:
    meta = confluence_meta(deployment)
    assert meta["hook_name"] == "Confluence"
    assert meta["hook_class_name"] == "airflow_provider_confluence.hooks.confluence.ConfluenceHook"
    standard = meta["standard_fields"]
    for field, label in LABELS.items():
        assert standard[field]["hidden"] is False
        assert standard[field]["title"] == label
        assert standard[field]["placeholder"] == PLACEHOLDERS[field]
    assert standard["port"]["hidden"] is True
    assert standard["url_schema"]["hidden"] is True  # "schema" in provider info
    extra = meta["extra_fields"]
    assert set(extra) == set(EXTRA_LABELS)
    for field, label in EXTRA_LABELS.items():
        assert extra[field]["schema"]["title"] == label
        assert extra[field]["description"]
    assert extra["deployment"]["schema"]["enum"] == ["cloud", "datacenter", None]
    assert extra["auth_type"]["schema"]["enum"] == ["basic", "bearer", None]
    assert extra["verify_ssl"]["value"] is True


def create_connection(dep: Deployment, conn_id: str, password: str) -> None:
    with_body = {
        "connection_id": conn_id,
        "conn_type": "confluence",
        "host": f"{dep.sim.base_url}/wiki",
        "login": dep.sim.email,
        "password": password,
        "extra": json.dumps({"deployment": "cloud", "timeout": 10}),
    }
    try:
        dep.api.post("/api/v2/connections", with_body)
    except HttpError as error:
        if error.status != 409:  # already made by an earlier test of this session
            raise


def test_the_test_button_is_enabled_in_this_deployment(deployment: Deployment) -> None:
    # Airflow's default is Disabled: the UI greys the button out and the API answers 403
    assert deployment.api.get("/ui/config")["test_connection"] == "Enabled"


def test_connection_created_through_the_api_tests_ok_against_the_simulator(deployment: Deployment) -> None:
    create_connection(deployment, "confluence_it", deployment.sim.token)
    stored = deployment.api.get("/api/v2/connections/confluence_it")
    assert stored["conn_type"] == "confluence"
    assert stored["password"] == "***"
    before = deployment.sim.stats()["requests_by_kind"].get("list", 0)
    answer = deployment.api.post(
        "/api/v2/connections/test", {"connection_id": "confluence_it", "conn_type": "confluence"}
    )
    assert answer["status"] is True, answer
    assert answer["message"] == (
        f"Connected to Confluence cloud at {deployment.sim.base_url}/wiki (basic auth)."
    )
    assert deployment.sim.stats()["requests_by_kind"].get("list", 0) == before + 1


def bad_token_answer(dep: Deployment) -> dict[str, Any]:
    create_connection(dep, "confluence_it_bad_token", "not-the-token")
    return dict(
        dep.api.post(
            "/api/v2/connections/test",
            {"connection_id": "confluence_it_bad_token", "conn_type": "confluence"},
        )
    )


def test_bad_token_gets_a_clear_message(deployment: Deployment) -> None:
    answer = bad_token_answer(deployment)
    assert answer["status"] is False
    message = answer["message"]
    assert "401" in message
    assert "rejected the credentials" in message
    assert "check that Login is the account e-mail and Password a valid API token" in message
    assert "not-the-token" not in message


@pytest.mark.xfail(
    strict=True,
    reason="package bug: the API server tests a copy of the connection under a random id, and "
    "ConfluenceHook.test_connection's message names it (credentials of connection 'x7Gq2Lp0'); fix: "
    "drop ' of/to connection <id>' from the messages test_connection returns",
)
def test_bad_token_message_names_no_random_connection_id(deployment: Deployment) -> None:
    message = bad_token_answer(deployment)["message"]
    assert "of connection '" not in message, message


# ------------------------------------------------------------------------------ headless Chromium
@pytest.fixture(scope="module")
def add_form(deployment: Deployment, work: Path) -> dict[str, Any]:
    """
    Admin > Connections > Add Connection, type Confluence: a screenshot of the form with its standard
    fields, then one with Extra Fields open (the form shows one section at a time), and their text.
    """
    sync_api = pytest.importorskip("playwright.sync_api")
    shots = {part: work / "logs" / f"add-connection-confluence-{part}.png" for part in ("standard", "extra")}
    profile = tempfile.mkdtemp(prefix="chromium-profile-", dir=work)
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch_persistent_context(
            profile,
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1280, "height": 1300},
        )
        try:
            page = browser.new_page()
            page.goto(f"{deployment.api.base_url}/connections")
            page.get_by_role("button", name="Add Connection").click()
            dialog = page.get_by_role("dialog")
            dialog.get_by_label("Connection ID").fill("confluence_from_ui")
            dialog.get_by_role("combobox").fill("Confluence")
            page.keyboard.press("Enter")
            dialog.get_by_text(LABELS["host"]).wait_for()
            page.wait_for_timeout(500)  # let the form settle
            page.screenshot(path=str(shots["standard"]), full_page=True)
            texts = {"standard": dialog.inner_text()}
            dialog.get_by_text("Extra Fields", exact=True).click()
            dialog.get_by_text(EXTRA_LABELS["proxy"]).wait_for()
            page.wait_for_timeout(500)  # the accordion's animation
            page.screenshot(path=str(shots["extra"]), full_page=True)
            texts["extra"] = dialog.inner_text()
            inputs = {
                name: element.get_attribute("placeholder")
                for element in dialog.locator("input, textarea").all()
                if (name := element.get_attribute("name"))
            }
            selects = {
                field: dialog.locator(f"#element_{field}").locator("xpath=..").inner_text()
                for field in ("deployment", "auth_type")
            }
        finally:
            browser.close()
    return {"screenshots": shots, "inputs": inputs, "texts": texts, "selects": selects}


def test_add_connection_form_shows_our_fields(add_form: dict[str, Any]) -> None:
    for shot in add_form["screenshots"].values():
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert shot.stat().st_size > 20_000, f"{shot} is (nearly) empty"
    texts, inputs = add_form["texts"], add_form["inputs"]
    assert "Confluence" in texts["standard"]
    for field, label in LABELS.items():
        assert label in texts["standard"]
        assert inputs[field] == PLACEHOLDERS[field]
    for field, label in EXTRA_LABELS.items():
        assert label in texts["extra"]
        assert f"element_{field}" in inputs
    assert "port" not in inputs  # hidden by the provider
    assert "schema" not in inputs
    print("screenshots of the add-connection form:", *add_form["screenshots"].values())


@pytest.mark.xfail(
    strict=True,
    reason="package bug: the conn-fields enums of deployment and auth_type include None without "
    "values_display, so the form shows the literal text 'null'; fix: give both schemas a "
    "values_display with a 'null' entry (e.g. 'Infer from the host')",
)
def test_optional_choices_are_not_shown_as_null(add_form: dict[str, Any]) -> None:
    for field, shown in add_form["selects"].items():
        assert "null" not in shown.split(), f"{field} shows {shown!r}"


@pytest.mark.xfail(
    strict=False,
    reason="Airflow 3.3.2 bug: the connection list's Test button posts port 0 for a connection without "
    "a port (the Confluence form hides it), and the API refuses with 400 'The host or port to test "
    "differs from the stored connection'",
)
def test_test_button_in_the_connection_list(deployment: Deployment, work: Path) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    create_connection(deployment, "confluence_it", deployment.sim.token)
    answers: list[tuple[int, str]] = []
    profile = tempfile.mkdtemp(prefix="chromium-profile-", dir=work)
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch_persistent_context(
            profile, executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            page = browser.new_page()
            page.on(
                "response",
                lambda r: (
                    answers.append((r.status, r.text())) if r.url.endswith("/connections/test") else None
                ),
            )
            page.goto(f"{deployment.api.base_url}/connections")
            row = page.get_by_role("row").filter(has_text="confluence_it")
            row.first.get_by_role("button", name="Test Connection").click()
            page.wait_for_timeout(3000)
            page.screenshot(path=str(work / "logs" / "connection-list-test-button.png"))
        finally:
            browser.close()
    assert answers, "the Test button sent no request"
    status, body = answers[0]
    assert status == 200, body
    assert json.loads(body)["status"] is True, body


def test_cli_connection_test_uses_the_real_connection_id(deployment: Deployment) -> None:
    """`airflow connections test` (the workaround for the list's Test button) against the same database."""
    create_connection(deployment, "confluence_it", deployment.sim.token)
    create_connection(deployment, "confluence_it_bad_token", "not-the-token")
    ok = subprocess.run(
        [deployment.venv.airflow, "connections", "test", "confluence_it"],
        cwd=deployment.work,
        env=deployment.env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "Connection success!" in ok.stdout
    bad = subprocess.run(
        [deployment.venv.airflow, "connections", "test", "confluence_it_bad_token"],
        cwd=deployment.work,
        env=deployment.env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert bad.returncode == 1
    said = " ".join(bad.stdout.split())  # the CLI wraps long lines
    assert "of connection 'confluence_it_bad_token'" in said, said
    assert "check that Login is the account e-mail and Password a valid API token" in said
