"""The sdist and the wheel, and the wheel installed into a clean environment."""

from __future__ import annotations

import ast
import re
import subprocess
import tarfile
import zipfile
from typing import TYPE_CHECKING

from conftest import ROOT, clean_env

if TYPE_CHECKING:
    from pathlib import Path

    from conftest import Deployment, Dist, Venv

PACKAGE = "airflow_provider_confluence"


def package_modules(names: list[str], prefix: str = "") -> set[str]:
    return {n[len(prefix) :] for n in names if n.startswith(f"{prefix}{PACKAGE}/") and n.endswith(".py")}


def test_wheel_has_typing_marker_entry_point_and_simulator(dist: Dist) -> None:
    with zipfile.ZipFile(dist.wheel) as wheel:
        names = wheel.namelist()
        info = f"{PACKAGE}-{dist.version}.dist-info"
        entry_points = wheel.read(f"{info}/entry_points.txt").decode()
        metadata = wheel.read(f"{info}/METADATA").decode()
    assert f"{PACKAGE}/py.typed" in names
    assert re.search(
        rf"\[apache_airflow_provider\]\s*\n\s*provider_info\s*=\s*{PACKAGE}\.get_provider_info:get_provider_info",
        entry_points,
    ), entry_points
    assert re.search(
        r"^Requires-Dist: apache-airflow<4,>=3\.2|^Requires-Dist: apache-airflow>=3\.2", metadata, re.M
    )
    assert f"{PACKAGE}/testing/__main__.py" in names  # the simulator ships with the provider
    assert not [n for n in names if n.startswith(("tests/", "example_dags/", "integration/"))]


def test_sdist_has_typing_marker_and_the_whole_package(dist: Dist) -> None:
    with tarfile.open(dist.sdist) as sdist:
        names = sdist.getnames()
    top = f"{PACKAGE}-{dist.version}/"
    assert f"{top}{PACKAGE}/py.typed" in names
    assert f"{top}README.md" in names
    assert f"{top}pyproject.toml" in names
    with zipfile.ZipFile(dist.wheel) as wheel:
        in_wheel = package_modules(wheel.namelist())
    assert package_modules(names, top) == in_wheel


def test_example_dags_are_documented() -> None:
    readme = (ROOT / "README.md").read_text()
    files = sorted((ROOT / "example_dags").glob("*.py"))
    assert len(files) >= 3
    for path in files:
        assert path.name in readme, f"README does not mention {path.name}"
        tree = ast.parse(path.read_text())
        docstring = ast.get_docstring(tree) or ""
        assert len(docstring) > 80, f"{path.name} has no real module docstring"
        assert "connection" in docstring.lower(), f"{path.name}'s docstring does not say what it needs"
        dag_calls = [
            node
            for node in ast.walk(tree)
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "DAG"
        ]
        assert dag_calls, path.name
        keywords = {k.arg for k in dag_calls[0].keywords}
        assert {"dag_id", "description", "tags"} <= keywords, f"{path.name}: {keywords}"


def test_providers_list_in_the_clean_environment_shows_the_provider(
    airflow_venv: Venv, dist: Dist, tmp_path: Path
) -> None:
    env = clean_env()
    env["AIRFLOW_HOME"] = str(tmp_path / "airflow-home")
    listing = subprocess.run(
        [airflow_venv.airflow, "providers", "list"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=True,
    ).stdout
    line = next((x for x in listing.splitlines() if "airflow-provider-confluence" in x), None)
    assert line is not None, listing
    assert dist.version in line, line
    # ...and it is the installed wheel that answers, not the source tree
    where = subprocess.run(
        [airflow_venv.python, "-c", f"import {PACKAGE}; print({PACKAGE}.__file__)"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.strip()
    assert where.startswith(str(airflow_venv.path)), where
    assert "site-packages" in where, where


def test_api_server_lists_the_provider(deployment: Deployment, dist: Dist) -> None:
    providers = deployment.api.get("/api/v2/providers", limit=100)["providers"]
    ours = [p for p in providers if p["package_name"] == "airflow-provider-confluence"]
    assert ours, [p["package_name"] for p in providers]
    assert ours[0]["version"] == dist.version
