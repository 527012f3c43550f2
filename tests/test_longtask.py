"""``LongTask.from_json`` and the rules over one long-task status (Cloud and Data Center shapes)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_confluence.exceptions import ConfluenceBadResponseError, LongTaskFailed
from airflow_provider_confluence.longtask import LongTask, Message, Outcome, format_duration

DATA = Path(__file__).parent / "data"

COPY_NAME = "com.atlassian.confluence.pages.actions.CopyPageHierarchyAction.action.name"
REMOVE_SPACE_NAME = "com.atlassian.confluence.spaces.actions.RemoveSpaceAction.action.name"


def load(name: str) -> Any:
    return json.loads((DATA / name).read_text(encoding="utf-8"))


def status(**fields: Any) -> dict[str, Any]:
    """A Cloud-shaped status (with ``finished``); ``fields`` override or, when None, remove a field."""
    body: dict[str, Any] = {
        "id": "1180606",
        "name": {"key": COPY_NAME, "args": []},
        "elapsedTime": 12_000,
        "percentageComplete": 40,
        "successful": False,
        "finished": False,
        "messages": [],
        "_links": {"base": "https://example.atlassian.net/wiki", "context": "/wiki"},
    }
    for key, value in fields.items():
        if value is None:
            body.pop(key, None)
        else:
            body[key] = value
    return body


def failed_copy() -> LongTask:
    """A finished page-tree copy that failed with two error keys (one string arg, one object arg)."""
    return LongTask.from_json(
        status(
            percentageComplete=70,
            elapsedTime=65_000,
            finished=True,
            successful=False,
            errors=[
                {
                    "key": "ERROR_COPY_PAGE",
                    "translation": "Could not copy the page",
                    "args": ["Design notes"],
                },
                {
                    "key": "ERROR_RELINK",
                    "translation": "Could not relink the attachments",
                    "args": [{"id": "98765", "title": "Roadmap"}],
                },
            ],
            messages=[{"translation": "Copying pages", "args": []}],
        )
    )


# ---------------------------------------------------------------------------- fixtures (real shapes)
def test_fixture_cloud_space_delete_without_finished_is_done_and_successful() -> None:
    task = LongTask.from_json(load("cloud-space-delete-no-finished.json"))

    assert task.id == "885174"
    assert task.finished is None
    assert task.is_done is True
    assert task.outcome() is Outcome.SUCCESS
    assert task.elapsed_time_ms == 329
    assert task.display_name == "Remove space"
    assert task.latest_message == "Deleting space"
    assert task.error_keys == ()
    assert task.warning_keys == ()


@pytest.mark.parametrize(
    ("fixture", "field"),
    [
        pytest.param("error-404.json", "'id'", id="404-error-body-has-no-id"),
        pytest.param(
            "longtask-started-202.json", "'percentageComplete'", id="202-started-body-has-no-percent"
        ),
    ],
)
def test_fixture_bodies_that_are_not_a_status_are_rejected(fixture: str, field: str) -> None:
    with pytest.raises(ConfluenceBadResponseError, match=field):
        LongTask.from_json(load(fixture))


def test_task_id_stays_an_opaque_string() -> None:
    assert LongTask.from_json(status(id="007")).id == "007"
    assert LongTask.from_json(status(id=1180606)).id == "1180606"


# ---------------------------------------------------------------------------- done and outcome
@pytest.mark.parametrize(
    ("overrides", "done", "outcome"),
    [
        pytest.param({"finished": False, "successful": False}, False, Outcome.RUNNING, id="cloud-running"),
        pytest.param(
            {"finished": True, "successful": True, "percentageComplete": 100},
            True,
            Outcome.SUCCESS,
            id="cloud-finished-success",
        ),
        pytest.param(
            {"finished": True, "successful": False, "percentageComplete": 35},
            True,
            Outcome.FAILURE,
            id="cloud-finished-below-100-failed",
        ),
        pytest.param(
            {"finished": False, "successful": False, "percentageComplete": 100},
            False,
            Outcome.RUNNING,
            id="cloud-100-percent-but-not-finished-yet",
        ),
        pytest.param(
            {"finished": None, "successful": False, "percentageComplete": 99},
            False,
            Outcome.RUNNING,
            id="datacenter-99-running",
        ),
        pytest.param(
            {"finished": None, "successful": True, "percentageComplete": 100},
            True,
            Outcome.SUCCESS,
            id="datacenter-100-success",
        ),
        pytest.param(
            {"finished": None, "successful": False, "percentageComplete": 100},
            True,
            Outcome.FAILURE,
            id="datacenter-100-failed",
        ),
        pytest.param(
            {"finished": None, "successful": None, "percentageComplete": 100},
            True,
            Outcome.FAILURE,
            id="datacenter-100-successful-missing",
        ),
    ],
)
def test_done_and_outcome(overrides: dict[str, Any], done: bool, outcome: Outcome) -> None:
    task = LongTask.from_json(status(**overrides))

    assert task.is_done is done
    assert task.outcome() is outcome


@pytest.mark.parametrize("finished", [pytest.param(False, id="cloud"), pytest.param(None, id="datacenter")])
def test_successful_false_while_running_is_not_a_failure(finished: bool | None) -> None:
    task = LongTask.from_json(status(finished=finished, successful=False, percentageComplete=10, errors=[]))

    assert task.outcome() is Outcome.RUNNING
    assert task.outcome(warnings_fail=True) is Outcome.RUNNING


def test_error_keys_do_not_fail_a_task_that_is_still_running() -> None:
    task = LongTask.from_json(
        status(errors=[{"key": "ERROR_COPY_PAGE", "translation": "Could not copy", "args": []}])
    )

    assert task.error_keys == ("ERROR_COPY_PAGE",)
    assert task.outcome() is Outcome.RUNNING


# ---------------------------------------------------------------------------- where the keys sit
@pytest.mark.parametrize(
    ("overrides", "keys"),
    [
        pytest.param(
            {"errors": [{"key": "ERROR_COPY_PAGE", "translation": "Could not copy", "args": []}]},
            ("ERROR_COPY_PAGE",),
            id="in-errors-key",
        ),
        pytest.param(
            {
                "messages": [
                    {"key": "STATUS_COPYING_PAGES", "translation": "Copying", "args": []},
                    {"key": "ERROR_LOCK_FAILED", "translation": "Could not lock the space", "args": []},
                ]
            },
            ("ERROR_LOCK_FAILED",),
            id="in-messages-key",
        ),
        pytest.param(
            {"messages": [{"translation": "Copy stopped: ERROR_UNKNOWN happened", "args": []}]},
            ("ERROR_UNKNOWN",),
            id="only-in-message-translation",
        ),
        pytest.param(
            {"errors": [{"translation": "ERROR_RELINK: links could not be updated"}]},
            ("ERROR_RELINK",),
            id="only-in-error-translation",
        ),
        pytest.param(
            {"errors": [{"message": {"key": "ERROR_COPY_PAGE", "translation": "nested", "args": []}}]},
            ("ERROR_COPY_PAGE",),
            id="nested-message-object",
        ),
    ],
)
def test_failure_finds_error_keys(overrides: dict[str, Any], keys: tuple[str, ...]) -> None:
    task = LongTask.from_json(status(finished=True, successful=False, **overrides))

    assert task.outcome() is Outcome.FAILURE
    assert task.error_keys == keys
    failure = task.to_failure()
    assert isinstance(failure, LongTaskFailed)
    assert failure.error_keys == keys
    assert failure.task_id == "1180606"
    for key in keys:
        assert key in str(failure)


def test_error_and_warning_keys_keep_order_and_drop_duplicates() -> None:
    task = LongTask.from_json(
        status(
            errors=[
                {"key": "ERROR_COPY_PAGE", "translation": "a"},
                {"key": "WARN_RENAME_PAGE", "translation": "b"},
                {"key": "ERROR_RELINK", "translation": "c"},
                {"key": "ERROR_COPY_PAGE", "translation": "d"},
                {"key": "WARN_IGNORE_COPY_ATTACHMENT", "translation": "e"},
            ],
            messages=[
                {"key": "ERROR_RELINK", "translation": "f"},
                {"key": "STATUS_COPIED_PAGES", "translation": "g"},
                {"key": "ERROR_UNKNOWN", "translation": "h"},
                {"key": "WARN_RENAME_PAGE", "translation": "i"},
                {"translation": "WARN_IGNORE_VIEW_RESTRICTED in text"},
            ],
        )
    )

    assert task.error_keys == ("ERROR_COPY_PAGE", "ERROR_RELINK", "ERROR_UNKNOWN")
    assert task.warning_keys == (
        "WARN_RENAME_PAGE",
        "WARN_IGNORE_COPY_ATTACHMENT",
        "WARN_IGNORE_VIEW_RESTRICTED",
    )


# ---------------------------------------------------------------------------- warnings
def warned_copy() -> LongTask:
    return LongTask.from_json(
        status(
            finished=True,
            successful=True,
            percentageComplete=100,
            errors=[
                {"key": "WARN_RENAME_PAGE", "translation": "Page renamed", "args": ["Copy of Home"]},
                {"key": "WARN_IGNORE_COPY_PERMISSION", "translation": "Permission not copied", "args": []},
            ],
        )
    )


def test_warnings_only_is_a_success() -> None:
    task = warned_copy()

    assert task.outcome() is Outcome.SUCCESS
    assert task.error_keys == ()
    assert task.warning_keys == ("WARN_RENAME_PAGE", "WARN_IGNORE_COPY_PERMISSION")


def test_warnings_fail_when_asked() -> None:
    task = warned_copy()

    assert task.outcome(warnings_fail=True) is Outcome.FAILURE
    failure = task.to_failure()
    assert failure.error_keys == ("WARN_RENAME_PAGE", "WARN_IGNORE_COPY_PERMISSION")
    assert "WARN_RENAME_PAGE: Page renamed (args: Copy of Home)" in failure.message
    assert "WARN_IGNORE_COPY_PERMISSION" in failure.message


def test_success_without_warnings_does_not_fail_even_with_warnings_fail() -> None:
    task = LongTask.from_json(status(finished=True, successful=True, percentageComplete=100))

    assert task.outcome(warnings_fail=True) is Outcome.SUCCESS


# ---------------------------------------------------------------------------- args
def test_args_as_strings_and_objects() -> None:
    task = LongTask.from_json(
        status(
            name={"key": COPY_NAME, "args": ["SRC", {"spaceKey": "DST"}]},
            messages=[
                {"key": "STATUS_COPIED_PAGES", "translation": "Copied pages", "args": [3, {"title": "Home"}]}
            ],
        )
    )

    assert task.name_args == ("SRC", {"spaceKey": "DST"})
    assert task.messages[0].args == (3, {"title": "Home"})
    assert task.messages[0].describe() == "STATUS_COPIED_PAGES: Copied pages (args: 3, Home)"


@pytest.mark.parametrize(
    ("message", "text"),
    [
        pytest.param(Message(translation="Copying", key=None), "Copying", id="text-only"),
        pytest.param(Message(key="ERROR_UNKNOWN"), "ERROR_UNKNOWN", id="key-only"),
        pytest.param(
            Message(translation="ERROR_RELINK failed", key="ERROR_RELINK"),
            "ERROR_RELINK failed",
            id="key-already-in-text",
        ),
        pytest.param(
            Message(translation="Oops", key="ERROR_UNKNOWN", args=("a", {"name": "b"})),
            "ERROR_UNKNOWN: Oops (args: a, b)",
            id="key-text-and-args",
        ),
        pytest.param(Message(), "(no message)", id="empty"),
    ],
)
def test_message_describe(message: Message, text: str) -> None:
    assert message.describe() == text


def test_message_with_only_args_does_not_print_none() -> None:
    # BUG: Message.describe() starts from ``head = key`` (None) when there is neither key nor text,
    # so a failure whose error entry carries only args reads "None (args: ...)".
    task = LongTask.from_json(status(finished=True, successful=False, errors=[{"args": ["Design notes"]}]))

    text = Message(args=("Design notes",)).describe()
    assert "None" not in text
    assert "Design notes" in text
    assert "None" not in task.failure_message()
    assert "Design notes" in task.failure_message()


def test_message_round_trips_through_dict() -> None:
    message = Message(translation="Could not copy", key="ERROR_COPY_PAGE", args=("Home", {"id": "1"}))

    assert Message.from_dict(json.loads(json.dumps(message.to_dict()))) == message


# ---------------------------------------------------------------------------- summary
def test_summary_is_json_serialisable_and_carries_additional_details() -> None:
    task = LongTask.from_json(
        status(
            finished=True,
            successful=True,
            percentageComplete=100,
            status="COMPLETED",
            name={"key": COPY_NAME, "args": [{"spaceKey": "DST"}]},
            errors=[{"key": "WARN_RENAME_PAGE", "translation": "Renamed", "args": ["Home"]}],
            messages=[{"key": "STATUS_COPIED_PAGES", "translation": "Copied 3 pages", "args": [3]}],
            additionalDetails={
                "destinationId": "4242",
                "destinationUrl": "https://example.atlassian.net/wiki/spaces/DST/pages/4242",
                "totalPageNeedToCopy": 3,
            },
        )
    )

    summary = task.summary()

    assert json.loads(json.dumps(summary)) == summary
    assert summary["additional_details"]["destinationUrl"] == (
        "https://example.atlassian.net/wiki/spaces/DST/pages/4242"
    )
    assert summary["additional_details"]["totalPageNeedToCopy"] == 3
    assert summary["id"] == "1180606"
    assert summary["name"] == COPY_NAME
    assert summary["name_args"] == [{"spaceKey": "DST"}]
    assert summary["status"] == "COMPLETED"
    assert summary["finished"] is True
    assert summary["successful"] is True
    assert summary["percentage_complete"] == 100
    assert summary["warning_keys"] == ["WARN_RENAME_PAGE"]
    assert summary["error_keys"] == []
    assert summary["errors"] == [{"key": "WARN_RENAME_PAGE", "translation": "Renamed", "args": ["Home"]}]


def test_summary_of_a_datacenter_status_reports_finished_from_percent() -> None:
    summary = LongTask.from_json(load("cloud-space-delete-no-finished.json")).summary()

    assert json.loads(json.dumps(summary)) == summary
    assert summary["finished"] is True
    assert summary["additional_details"] == {}


def test_summary_keeps_only_the_latest_messages() -> None:
    messages = [{"translation": f"step {n}"} for n in range(50)]
    summary = LongTask.from_json(status(messages=messages)).summary()

    assert len(summary["messages"]) == 20
    assert summary["messages"][-1]["translation"] == "step 49"


# ---------------------------------------------------------------------------- describe / failure_message
def test_describe_running_task_names_id_name_percent_elapsed_and_eta() -> None:
    task = LongTask.from_json(
        status(
            percentageComplete=25,
            elapsedTime=30_000,
            messages=[{"key": "STATUS_COPYING_PAGES", "translation": "Copying pages", "args": []}],
        )
    )

    assert task.describe() == (
        "Confluence task 1180606 (Copy page hierarchy): 25% after 30.0 s, about 1 min 30 s left"
        " - STATUS_COPYING_PAGES: Copying pages"
    )


@pytest.mark.parametrize(
    ("successful", "word"),
    [pytest.param(True, "succeeded", id="success"), pytest.param(False, "failed", id="failure")],
)
def test_describe_finished_task_names_the_outcome(successful: bool, word: str) -> None:
    task = LongTask.from_json(status(finished=True, successful=successful, percentageComplete=100))

    text = task.describe()

    assert text.startswith("Confluence task 1180606 (Copy page hierarchy): 100% after 12.0 s")
    assert f", {word}" in text
    assert "left" not in text


def test_failure_message_contains_id_name_percent_elapsed_and_every_key_translation_and_arg() -> None:
    task = failed_copy()

    message = task.failure_message()

    for part in (
        "1180606",
        "Copy page hierarchy",
        "70%",
        "1 min 05 s",
        "ERROR_COPY_PAGE",
        "Could not copy the page",
        "Design notes",
        "ERROR_RELINK",
        "Could not relink the attachments",
        "Roadmap",
    ):
        assert part in message, part
    assert message.startswith(
        "Confluence task 1180606 (Copy page hierarchy) failed after 1 min 05 s at 70% "
        "with error keys ERROR_COPY_PAGE, ERROR_RELINK. Details: ERROR_COPY_PAGE: "
    )


def test_to_failure_carries_the_evidence() -> None:
    task = failed_copy()

    failure = task.to_failure()

    assert str(failure) == failure.message == task.failure_message()
    assert failure.task_id == "1180606"
    assert failure.error_keys == ("ERROR_COPY_PAGE", "ERROR_RELINK")
    assert [m.key for m in failure.errors] == ["ERROR_COPY_PAGE", "ERROR_RELINK"]
    assert failure.task is task


def test_failure_without_a_key_quotes_the_latest_messages() -> None:
    task = LongTask.from_json(
        status(
            finished=None,
            successful=False,
            percentageComplete=100,
            messages=[
                {"translation": "Export started"},
                {"translation": "Export aborted by an administrator"},
            ],
        )
    )

    message = task.failure_message()

    assert "without an error key" in message
    assert "Export aborted by an administrator" in message


# ---------------------------------------------------------------------------- eta and names
@pytest.mark.parametrize(
    ("overrides", "eta"),
    [
        pytest.param({"percentageComplete": 25, "elapsedTime": 10_000}, 30.0, id="quarter-done"),
        pytest.param({"percentageComplete": 50, "elapsedTime": 8_000}, 8.0, id="half-done"),
        pytest.param({"percentageComplete": 0, "elapsedTime": 8_000}, None, id="no-progress-yet"),
        pytest.param({"percentageComplete": 50, "elapsedTime": 0}, None, id="no-elapsed-time"),
        pytest.param({"percentageComplete": 50, "elapsedTime": None}, None, id="elapsed-time-missing"),
        pytest.param({"percentageComplete": 100, "finished": None}, None, id="done"),
        pytest.param({"percentageComplete": 60, "finished": True}, None, id="finished-below-100"),
    ],
)
def test_eta_seconds(overrides: dict[str, Any], eta: float | None) -> None:
    assert LongTask.from_json(status(**overrides)).eta_seconds() == eta


@pytest.mark.parametrize(
    ("name", "display"),
    [
        pytest.param({"key": REMOVE_SPACE_NAME, "args": []}, "Remove space", id="action-class"),
        pytest.param({"key": COPY_NAME, "args": []}, "Copy page hierarchy", id="copy-action"),
        pytest.param(
            {"key": "com.atlassian.confluence.copy.page.hierarchy.task.name"},
            "Copy page hierarchy",
            id="dotted-lower-case-key",
        ),
        pytest.param(
            {"key": "com.atlassian.confluence.pages.ArchivePagesLongRunningTask"},
            "Archive pages long running",
            id="task-class",
        ),
        pytest.param({"key": "action.name"}, "action.name", id="nothing-left-keeps-the-key"),
        pytest.param({}, "long task", id="name-without-key"),
        pytest.param(None, "long task", id="no-name"),
    ],
)
def test_display_name(name: dict[str, Any] | None, display: str) -> None:
    assert LongTask.from_json(status(name=name)).display_name == display


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        pytest.param(0.95, "950 ms", id="ms"),
        pytest.param(12.34, "12.3 s", id="seconds"),
        pytest.param(245, "4 min 05 s", id="minutes"),
        pytest.param(7380, "2 h 03 min", id="hours"),
    ],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


# ---------------------------------------------------------------------------- bad bodies
@pytest.mark.parametrize(
    ("body", "field"),
    [
        pytest.param("<html><body>Log in</body></html>", "a string", id="html-string"),
        pytest.param([status()], "a JSON list", id="json-list"),
        pytest.param(None, "null", id="null"),
        pytest.param(status(id=None), "'id'", id="missing-id"),
        pytest.param(status(id=""), "'id'", id="empty-id"),
        pytest.param(status(id=["1"]), "'id'", id="id-is-a-list"),
        pytest.param(status(id=True), "'id'", id="id-is-a-boolean"),
        pytest.param(status(id=1.5), "'id'", id="id-is-a-float"),
        pytest.param(status(percentageComplete=None), "'percentageComplete'", id="missing-percent"),
        pytest.param(status(percentageComplete="50"), "'percentageComplete'", id="percent-as-string"),
        pytest.param(status(percentageComplete=50.5), "'percentageComplete'", id="percent-fractional"),
        pytest.param(status(percentageComplete=True), "'percentageComplete'", id="percent-boolean"),
        pytest.param(
            status(percentageComplete=-1), "'percentageComplete' is -1, outside 0..100", id="percent--1"
        ),
        pytest.param(
            status(percentageComplete=101), "'percentageComplete' is 101, outside 0..100", id="percent-101"
        ),
        pytest.param(status(elapsedTime=-5), "'elapsedTime'", id="elapsed-negative"),
        pytest.param(status(elapsedTime="5s"), "'elapsedTime'", id="elapsed-as-string"),
        pytest.param(status(successful="true"), "'successful'", id="successful-as-string"),
        pytest.param(status(finished=1), "'finished'", id="finished-as-number"),
        pytest.param(status(messages={"translation": "x"}), "'messages'", id="messages-not-a-list"),
        pytest.param(status(messages=[42]), r"'messages\[0\]'", id="message-item-a-number"),
        pytest.param(status(errors="ERROR_UNKNOWN"), "'errors'", id="errors-not-a-list"),
        pytest.param(status(name="Copy pages"), "'name'", id="name-not-an-object"),
        pytest.param(status(name={"key": 5}), "'name.key'", id="name-key-not-a-string"),
        pytest.param(status(name={"key": COPY_NAME, "args": "x"}), "'name.args'", id="name-args-not-a-list"),
        pytest.param(
            status(messages=[{"translation": "x", "args": "y"}]),
            r"'messages\[0\].args'",
            id="message-args-not-a-list",
        ),
        pytest.param(status(additionalDetails=["x"]), "'additionalDetails'", id="details-not-an-object"),
    ],
)
def test_bad_bodies_raise_an_error_naming_the_field(body: object, field: str) -> None:
    with pytest.raises(ConfluenceBadResponseError, match=field) as caught:
        LongTask.from_json(body)

    assert "long-task status" in str(caught.value)


def test_float_with_integer_value_is_accepted_as_percent() -> None:
    assert LongTask.from_json(status(percentageComplete=50.0)).percentage_complete == 50


def test_unknown_fields_and_bare_text_messages_are_tolerated() -> None:
    task = LongTask.from_json(
        status(ari="ari:cloud:confluence::task/1", messages=["Copying"], extra={"x": 1})
    )

    assert task.messages == (Message(translation="Copying"),)
