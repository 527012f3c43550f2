"""TaskSpec and Fault: validation with clear errors, and JSON round trips."""

from __future__ import annotations

import json

import pytest

from airflow_provider_confluence.testing import Fault, TaskSpec

FULL_SPEC = TaskSpec(
    duration=2.5,
    curve="stall",
    outcome="failure",
    error_keys=("ERROR_LOCK_FAILED", "ERROR_RELINK"),
    warning_keys=(),
    error_args=("DEMO", ""),
    shape="datacenter",
    key_placement="translation",
    name_key="com.atlassian.confluence.spaces.actions.RemoveSpaceAction.action.name",
    additional_details={"destinationUrl": "https://x/y.zip", "nested": {"a": [1, 2]}},
    not_found_for=0.5,
    start_on_first_poll=True,
    stop_at_percent=30,
    task_id="880002",
    pages=12,
    status_message="Deleting space",
    status_key="STATUS_DELETING_PAGES",
)


@pytest.mark.parametrize("spec", [TaskSpec(), FULL_SPEC], ids=["defaults", "every-field"])
def test_task_spec_round_trips_through_json(spec):
    data = json.loads(json.dumps(spec.to_dict()))

    assert TaskSpec.from_dict(data) == spec
    assert set(data) == set(TaskSpec().to_dict())


def test_task_spec_normalises_lists_and_ints():
    spec = TaskSpec.from_dict({"duration": 2, "error_keys": ["ERROR_RELINK"], "error_args": ["a"]})

    assert spec.duration == 2.0
    assert isinstance(spec.duration, float)
    assert spec.error_keys == ("ERROR_RELINK",)
    assert spec.error_args == ("a",)
    assert hash(spec) == hash(TaskSpec(duration=2.0, error_keys=("ERROR_RELINK",), error_args=("a",)))


def test_default_keys_apply_only_when_none():
    assert TaskSpec(outcome="failure").effective_error_keys == ("ERROR_COPY_PAGE",)
    assert TaskSpec(outcome="failure", error_keys=()).effective_error_keys == ()
    assert TaskSpec(outcome="warnings").effective_warning_keys == ("WARN_IGNORE_COPY_ATTACHMENT",)


def test_unknown_fields_are_named():
    with pytest.raises(ValueError, match=r"unknown field\(s\) colour, size; allowed fields are"):
        TaskSpec.from_dict({"duration": 1, "colour": "red", "size": 2})


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        pytest.param({"duration": -1}, r"duration: must be a finite number >= 0", id="negative-duration"),
        pytest.param({"duration": "2"}, r"duration: expected a number", id="duration-as-string"),
        pytest.param({"duration": True}, r"duration: expected a number", id="duration-as-bool"),
        pytest.param({"duration": float("nan")}, r"duration: must be a finite", id="duration-nan"),
        pytest.param({"duration": 10**9}, r"duration: must be at most", id="duration-huge"),
        pytest.param(
            {"curve": "exponential"}, r"curve: must be one of 'linear', 'stall', 'stepped'", id="curve"
        ),
        pytest.param({"outcome": "maybe"}, r"outcome: must be one of", id="outcome"),
        pytest.param({"shape": "server"}, r"shape: must be one of", id="shape"),
        pytest.param({"key_placement": "name"}, r"key_placement: must be one of", id="key-placement"),
        pytest.param(
            {"error_keys": "ERROR_X"}, r"error_keys: expected a list of strings", id="keys-as-string"
        ),
        pytest.param({"error_keys": [1]}, r"error_keys: every item", id="keys-as-numbers"),
        pytest.param({"error_args": [None]}, r"error_args: every item", id="args-with-null"),
        pytest.param({"name_key": ""}, r"name_key: must not be empty", id="empty-name-key"),
        pytest.param(
            {"additional_details": []}, r"additional_details: expected a JSON object", id="details-list"
        ),
        pytest.param(
            {"additional_details": {"totalPageNeedToCopy": "10"}},
            r"totalPageNeedToCopy",
            id="details-wrong-type",
        ),
        pytest.param({"not_found_for": -0.1}, r"not_found_for", id="negative-not-found"),
        pytest.param(
            {"start_on_first_poll": "yes"}, r"start_on_first_poll: expected true or false", id="poll-str"
        ),
        pytest.param(
            {"outcome": "failure", "stop_at_percent": 100},
            r"stop_at_percent: must be between 0 and 99",
            id="stop-at-100",
        ),
        pytest.param({"stop_at_percent": 50}, r"only a failing task can stop early", id="stop-on-success"),
        pytest.param({"task_id": "a/b"}, r"task_id: must be one URL path segment", id="id-with-slash"),
        pytest.param({"task_id": "a b"}, r"task_id: must be one URL path segment", id="id-with-space"),
        pytest.param({"task_id": 5}, r"task_id: expected a string", id="id-as-int"),
        pytest.param({"pages": -1}, r"pages: must be between", id="negative-pages"),
    ],
)
def test_bad_task_specs_raise_clear_value_errors(fields, message):
    with pytest.raises(ValueError, match=message):
        TaskSpec.from_dict(fields)
    with pytest.raises(ValueError, match=message):
        TaskSpec(**fields)


def test_from_dict_needs_an_object():
    with pytest.raises(ValueError, match="expected a JSON object"):
        TaskSpec.from_dict([1])  # type: ignore[arg-type]


def test_replace_validates():
    with pytest.raises(ValueError, match="duration"):
        TaskSpec().replace(duration=-5)


@pytest.mark.parametrize(
    "fault",
    [
        Fault("429"),
        Fault("503", times=3, task_id="1180606", after=2, retry_after="Wed, 21 Oct 2015 07:28:00 GMT"),
        Fault("slow", delay=0.25, endpoint="any"),
    ],
    ids=["minimal", "every-field", "slow-any"],
)
def test_fault_round_trips_through_json(fault):
    assert Fault.from_dict(json.loads(json.dumps(fault.to_dict()))) == fault


def test_fault_kind_may_be_given_as_a_number():
    assert Fault(429).kind == "429"  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        pytest.param({"kind": "418"}, r"kind: must be one of", id="unknown-kind"),
        pytest.param({}, r"Fault.kind: required", id="no-kind"),
        pytest.param({"kind": "500", "times": 0}, r"times: must be between 1", id="zero-times"),
        pytest.param({"kind": "500", "after": -1}, r"after: must be between 0", id="negative-after"),
        pytest.param({"kind": "slow", "delay": -1}, r"delay: must be a finite number", id="negative-delay"),
        pytest.param(
            {"kind": "429", "retry_after": "1\r\nX-Evil: 1"},
            r"retry_after: must be a short printable",
            id="header-injection",
        ),
        pytest.param(
            {"kind": "429", "retry_after": 5}, r"retry_after: expected a string", id="retry-after-int"
        ),
        pytest.param({"kind": "500", "endpoint": "everything"}, r"endpoint: must be one of", id="endpoint"),
        pytest.param(
            {"kind": "500", "task_id": "1", "endpoint": "list"},
            r"only status requests name a task",
            id="task-id-on-list",
        ),
        pytest.param({"kind": "500", "colour": "red"}, r"unknown field\(s\) colour", id="unknown-field"),
    ],
)
def test_bad_faults_raise_clear_value_errors(fields, message):
    with pytest.raises(ValueError, match=message):
        Fault.from_dict(fields)
