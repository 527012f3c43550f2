"""Every status the simulator answers conforms to the OpenAPI description in tests/data."""

from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema.exceptions import ValidationError
from openapi_schema_validator import OAS30Validator, oas30_format_checker

from airflow_provider_confluence.testing import TaskSpec, load_scenario

SPEC_PATH = Path(__file__).resolve().parents[1] / "data" / "longtask-openapi.yml"


def build_schemas() -> dict[str, dict[str, Any]]:
    spec = yaml.safe_load(SPEC_PATH.read_text(encoding="utf-8"))
    schemas: dict[str, dict[str, Any]] = copy.deepcopy(spec["components"]["schemas"])
    # The description refers to Message and GenericLinks without defining them; these follow
    # /work/shared/spec/README.md (from Atlassian's complete Confluence Cloud v1 specification).
    schemas["Message"] = {
        "type": "object",
        "required": ["translation", "args"],
        "properties": {
            "translation": {"type": "string"},
            "args": {"type": "array", "items": {"anyOf": [{"type": "string"}, {"type": "object"}]}},
            "key": {"type": "string"},
        },
    }
    schemas["GenericLinks"] = {"type": "object", "additionalProperties": {"type": "string"}}
    return schemas


SCHEMAS = build_schemas()


def validator(*, without_required: tuple[str, ...] = ()) -> OAS30Validator:
    """``LongTaskStatusWithLinks``, optionally with some names dropped from ``required``."""
    schema = copy.deepcopy(SCHEMAS["LongTaskStatusWithLinks"])
    schema["required"] = [name for name in schema["required"] if name not in without_required]
    schema["components"] = {"schemas": SCHEMAS}
    return OAS30Validator(schema, format_checker=oas30_format_checker)


CLOUD_STATUS = validator()
# Data Center (and older Cloud) statuses have no `finished` field: the same schema with only `finished`
# removed from `required`.
DATACENTER_STATUS = validator(without_required=("finished",))
# List items are `LongTaskStatus`, which is `LongTaskStatusWithLinks` without `_links` (spec README):
# the same schema with `_links` (and, for Data Center, `finished`) removed from `required`.
CLOUD_LIST_ITEM = validator(without_required=("_links",))
DATACENTER_LIST_ITEM = validator(without_required=("_links", "finished"))


def check_status(body: dict[str, Any], shape: str) -> None:
    (CLOUD_STATUS if shape == "cloud" else DATACENTER_STATUS).validate(body)


def check_list_item(body: dict[str, Any], shape: str) -> None:
    (CLOUD_LIST_ITEM if shape == "cloud" else DATACENTER_LIST_ITEM).validate(body)


def collect(api, task_id: str, *, seconds: float) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Statuses and list items of ``task_id`` seen while polling it for ``seconds``."""
    statuses, items = [], []
    deadline = time.monotonic() + seconds
    while True:
        statuses.append(api.status_json(task_id))
        page = api.get("/wiki/rest/api/longtask").json()
        items += [item for item in page["results"] if item["id"] == task_id]
        if time.monotonic() >= deadline:
            return statuses, items
        time.sleep(0.03)


@pytest.mark.parametrize("placement", ["errors", "messages", "translation"])
@pytest.mark.parametrize("outcome", ["success", "failure", "warnings"])
@pytest.mark.parametrize("shape", ["cloud", "datacenter"])
def test_every_status_validates_running_and_finished(sim, api, shape, outcome, placement):
    task_id = sim.add_task(
        TaskSpec(
            duration=0.15, shape=shape, outcome=outcome, key_placement=placement, error_args=("Q3 Plan",)
        )
    )

    statuses, items = collect(api, task_id, seconds=0.25)

    assert any(not api.is_done(body) for body in statuses), "saw the task running"
    assert api.is_done(statuses[-1]), "saw the task finished"
    assert len(items) == len(statuses)
    for body in statuses:
        check_status(body, shape)
    for item in items:
        assert "_links" not in item
        check_list_item(item, shape)


VARIANTS = [
    pytest.param(TaskSpec(duration=0.15, curve="stepped"), id="stepped"),
    pytest.param(TaskSpec(duration=0.15, curve="stall", shape="datacenter"), id="stall-datacenter"),
    pytest.param(TaskSpec(duration=0.15, outcome="failure", stop_at_percent=40), id="stopped-cloud"),
    pytest.param(
        TaskSpec(duration=0.15, outcome="failure", stop_at_percent=40, shape="datacenter"),
        id="stopped-datacenter",
    ),
    pytest.param(TaskSpec(duration=0.15, outcome="failure", error_keys=()), id="failure-without-keys"),
    pytest.param(
        TaskSpec(
            duration=0.15,
            outcome="warnings",
            warning_keys=("WARN_RENAME_PAGE", "WARN_IGNORE_COPY_PERMISSION"),
            pages=10,
            additional_details={
                "destinationId": "990003",
                "destinationUrl": "https://x/p",
                "totalPageNeedToCopy": 10,
            },
        ),
        id="copy-with-details",
    ),
    pytest.param(
        TaskSpec(
            duration=0.15, additional_details={"destinationId": None, "destinationUrl": "https://x/e.zip"}
        ),
        id="null-destination-id",
    ),
    pytest.param(
        TaskSpec(duration=0.15, status_key="STATUS_DELETING_PAGES", shape="datacenter"), id="status-key"
    ),
    pytest.param(TaskSpec(duration=0.15, start_on_first_poll=True), id="start-on-first-poll"),
    pytest.param(TaskSpec(duration=0), id="already-finished"),
]


@pytest.mark.parametrize("spec", VARIANTS)
def test_other_task_variants_validate(sim, api, spec):
    task_id = sim.add_task(spec)

    statuses, items = collect(api, task_id, seconds=0.2)

    for body in statuses:
        check_status(body, spec.shape)
    for item in items:
        check_list_item(item, spec.shape)


@pytest.mark.parametrize("prefix", ["/wiki", "/confluence"], ids=["cloud", "datacenter"])
def test_statuses_of_tasks_started_by_operations_validate(sim, api, prefix):
    sim.operation_spec = TaskSpec(duration=0)
    started = [
        api.request(
            "POST", prefix + "/rest/api/content/1/pagehierarchy/copy", json={"destinationPageId": "2"}
        ),
        api.request("POST", prefix + "/rest/api/content/archive", json={"pages": [{"id": "1"}]}),
        api.request("DELETE", prefix + "/rest/api/content/1/pageTree"),
        api.request("DELETE", prefix + "/rest/api/space/DEMO"),
    ]

    for response in started:
        body = api.status_json(response.json()["id"], prefix)
        check_status(body, "cloud" if prefix == "/wiki" else "datacenter")


def test_demo_scenario_statuses_validate(sim, api):
    tasks = load_scenario(sim, "demo")

    for task in tasks:
        check_status(api.status_json(task.task_id), "cloud")


def test_real_datacenter_style_fixture_passes_the_relaxed_schema(load_data):
    fixture = load_data("cloud-space-delete-no-finished.json")

    DATACENTER_STATUS.validate(fixture)
    with pytest.raises(ValidationError, match="finished"):
        CLOUD_STATUS.validate(fixture)


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        pytest.param({"percentageComplete": "50"}, "is not of type 'integer'", id="percent-as-string"),
        pytest.param({"elapsedTime": 1.5}, "is not of type 'integer'", id="elapsed-as-float"),
        pytest.param(
            {"messages": [{"translation": "x", "args": [1]}]}, "is not valid", id="numeric-message-arg"
        ),
        pytest.param({"_links": {"base": 1}}, "is not of type 'string'", id="non-string-link"),
        pytest.param({"name": {"key": "k", "args": ["x"]}}, "is not of type 'object'", id="string-name-arg"),
    ],
)
def test_the_validator_rejects_nonconforming_statuses(load_data, change, problem):
    body = {**load_data("cloud-space-delete-no-finished.json"), "finished": True, **change}

    with pytest.raises(ValidationError, match=problem):
        CLOUD_STATUS.validate(body)
