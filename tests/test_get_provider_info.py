"""The provider registration, checked against Airflow's own schemas and discovered by its ProvidersManager."""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

import airflow
import jsonschema
import pytest
from airflow.providers_manager import ProvidersManager

from airflow_provider_confluence import __version__
from airflow_provider_confluence.core import KNOWN_EXTRAS, ConnectionSettings
from airflow_provider_confluence.get_provider_info import get_provider_info
from airflow_provider_confluence.hooks.confluence import ConfluenceHook

PACKAGE = "airflow-provider-confluence"
AIRFLOW_DIR = Path(airflow.__file__).parent


def airflow_schema(name: str) -> dict[str, Any]:
    return json.loads((AIRFLOW_DIR / name).read_text(encoding="utf-8"))


def connection_type() -> dict[str, Any]:
    (entry,) = get_provider_info()["connection-types"]
    return entry


@pytest.fixture(scope="module")
def manager() -> ProvidersManager:
    return ProvidersManager()


# ---------------------------------------------------------------------------- schemas
def test_provider_info_validates_against_airflow_runtime_schema() -> None:
    schema = airflow_schema("provider_info.schema.json")

    jsonschema.validate(get_provider_info(), schema)


def test_connection_type_validates_against_airflow_provider_yaml_schema() -> None:
    """The stricter development schema is the one that defines ``conn-fields`` and ``ui-field-behaviour``."""
    schema = airflow_schema("provider.yaml.schema.json")["properties"]["connection-types"]

    jsonschema.validate(get_provider_info()["connection-types"], schema)


def test_ui_field_behaviour_validates_against_airflow_form_schema() -> None:
    behaviour = connection_type()["ui-field-behaviour"]
    customized = {
        "hidden_fields": behaviour["hidden-fields"],
        "relabeling": behaviour["relabeling"],
        "placeholders": behaviour["placeholders"],
    }

    jsonschema.validate(customized, airflow_schema("customized_form_field_behaviours.schema.json"))


def test_provider_info_is_json_and_carries_the_package_version() -> None:
    info = get_provider_info()

    assert json.loads(json.dumps(info)) == info
    assert info["package-name"] == PACKAGE
    assert info["versions"] == [__version__]


@pytest.mark.parametrize("field", sorted(connection_type()["conn-fields"]))
def test_each_conn_field_schema_is_valid_and_accepts_its_default_and_empty(field: str) -> None:
    field_schema = connection_type()["conn-fields"][field]["schema"]

    jsonschema.Draft202012Validator.check_schema(field_schema)
    jsonschema.validate(None, field_schema)
    if "default" in field_schema:
        jsonschema.validate(field_schema["default"], field_schema)


def test_conn_fields_are_exactly_the_extras_the_hook_reads() -> None:
    assert set(connection_type()["conn-fields"]) == set(KNOWN_EXTRAS)


@pytest.mark.parametrize(
    ("field", "values"),
    [
        pytest.param("deployment", ["cloud", "datacenter"], id="deployment"),
        pytest.param("auth_type", ["basic", "bearer"], id="auth_type"),
        pytest.param("verify_ssl", [True, False], id="verify_ssl"),
        pytest.param("timeout", [1, 30, 2.5, 3600], id="timeout"),
        pytest.param("cloud_id", ["abc-123"], id="cloud_id"),
        pytest.param("proxy", ["http://proxy.example.com:3128"], id="proxy"),
    ],
)
def test_values_the_form_accepts_are_accepted_by_the_hook(field: str, values: list[Any]) -> None:
    field_schema = connection_type()["conn-fields"][field]["schema"]
    for value in values:
        jsonschema.validate(value, field_schema)
        ConnectionSettings.from_connection(
            conn_id="form",
            host="https://example.atlassian.net",
            login="user@example.com",
            password="secret-token",
            extra={f"extra__confluence__{field}": value},
        )


def test_placeholders_and_relabeling_name_real_fields() -> None:
    behaviour = connection_type()["ui-field-behaviour"]
    standard = {"host", "schema", "login", "password", "port", "extra", "description"}

    assert set(behaviour["relabeling"]) <= standard
    assert set(behaviour["placeholders"]) <= standard | set(connection_type()["conn-fields"])
    assert not set(behaviour["hidden-fields"]) & {"host", "login", "password"}


@pytest.mark.parametrize(
    "section",
    [
        pytest.param("hooks", id="hooks"),
        pytest.param("sensors", id="sensors"),
        pytest.param("triggers", id="triggers"),
    ],
)
def test_listed_modules_import(section: str) -> None:
    for entry in get_provider_info()[section]:
        for module in entry["python-modules"]:
            importlib.import_module(module)


def test_hook_class_name_points_at_the_hook() -> None:
    module, _, name = connection_type()["hook-class-name"].rpartition(".")

    assert getattr(importlib.import_module(module), name) is ConfluenceHook
    assert connection_type()["connection-type"] == ConfluenceHook.conn_type
    assert connection_type()["hook-name"] == ConfluenceHook.hook_name


# ---------------------------------------------------------------------------- ProvidersManager
def test_providers_manager_finds_the_provider_with_its_version(manager: ProvidersManager) -> None:
    provider = manager.providers[PACKAGE]

    assert provider.version == __version__
    assert provider.data["package-name"] == PACKAGE
    assert provider.data["name"] == "Atlassian Confluence"


@pytest.mark.filterwarnings("ignore:ProvidersManager.hooks is deprecated")
def test_providers_manager_registers_the_hook(manager: ProvidersManager) -> None:
    hook = manager.hooks["confluence"]

    assert hook is not None
    assert hook.hook_class_name == "airflow_provider_confluence.hooks.confluence.ConfluenceHook"
    assert hook.connection_id_attribute_name == "confluence_conn_id"
    assert hook.package_name == PACKAGE
    assert hook.hook_name == "Confluence"
    assert hook.connection_type == "confluence"
    assert hook.connection_testable is True


def test_task_runtime_providers_manager_registers_the_hook() -> None:
    """The task SDK's manager is the one ``Connection.get_hook()`` and the UI's Test button use."""
    from airflow.sdk.providers_manager_runtime import ProvidersManagerTaskRuntime

    hook = ProvidersManagerTaskRuntime().hooks["confluence"]

    assert hook is not None
    assert hook.hook_class_name == "airflow_provider_confluence.hooks.confluence.ConfluenceHook"
    assert hook.connection_id_attribute_name == "confluence_conn_id"
    assert hook.package_name == PACKAGE


def test_providers_manager_builds_the_form_widgets_from_conn_fields(manager: ProvidersManager) -> None:
    widgets = {
        name: info for name, info in manager.connection_form_widgets.items() if info.package_name == PACKAGE
    }

    assert set(widgets) == {f"extra__confluence__{name}" for name in KNOWN_EXTRAS}
    timeout = widgets["extra__confluence__timeout"]
    assert timeout.field_name == "timeout"
    assert timeout.hook_class_name == "airflow_provider_confluence.hooks.confluence.ConfluenceHook"
    assert timeout.is_sensitive is False
    assert timeout.field["schema"]["title"] == "Request timeout (seconds)"
    assert timeout.field["schema"]["maximum"] == 3600
    assert widgets["extra__confluence__verify_ssl"].field["value"] is True
    assert widgets["extra__confluence__deployment"].field["schema"]["enum"] == ["cloud", "datacenter", None]
    assert all(not info.is_sensitive for info in widgets.values())


def test_providers_manager_builds_the_field_behaviour(manager: ProvidersManager) -> None:
    behaviour = manager.field_behaviours["confluence"]

    assert behaviour["hidden_fields"] == ["schema", "port"]
    assert behaviour["relabeling"]["host"] == "Site or base URL"
    assert behaviour["relabeling"]["password"] == "API token / personal access token / OAuth token"
    placeholders = behaviour["placeholders"]
    assert placeholders["host"].startswith("https://example.atlassian.net")
    assert placeholders["extra__confluence__proxy"] == "http://proxy.example.com:3128"
    assert "extra__confluence__deployment" in placeholders
    assert "deployment" not in placeholders


def test_providers_manager_lists_the_trigger_module(manager: ProvidersManager) -> None:
    triggers = {t.trigger_class_name for t in manager.trigger if t.package_name == PACKAGE}

    assert triggers == {"airflow_provider_confluence.triggers.longtask"}
