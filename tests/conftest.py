"""Test-wide set-up: a private AIRFLOW_HOME (set before anything imports Airflow) and its database."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"

_HOME = tempfile.mkdtemp(prefix="confluence-provider-tests-")
os.environ["AIRFLOW_HOME"] = _HOME
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
# dag.test() runs only DAGs of a bundle: the bundle is the example DAGs plus the tests' own DAGs.
_DAGS = Path(_HOME) / "dags"
_DAGS.mkdir()
_SOURCES = [*sorted((ROOT / "example_dags").glob("*.py")), *sorted((ROOT / "tests" / "dags").glob("*.py"))]
for _source in _SOURCES:
    (_DAGS / _source.name).symlink_to(_source)
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(_DAGS)
os.environ["AIRFLOW__CORE__UNIT_TEST_MODE"] = "False"
os.environ["AIRFLOW__LOGGING__LOGGING_LEVEL"] = "INFO"
os.environ.setdefault("CONFLUENCE_EXAMPLE_POLL_SECONDS", "0.5")

pytest_plugins = ["airflow_provider_confluence.testing.pytest_plugin"]


@pytest.fixture(scope="session")
def airflow_db() -> Iterator[Path]:
    """An initialised metadata database (SQLite in the private AIRFLOW_HOME), for dag.test()."""
    done = subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if done.returncode != 0:
        pytest.fail(f"airflow db migrate failed:\n{done.stdout}\n{done.stderr}")
    yield Path(_HOME)
    shutil.rmtree(_HOME, ignore_errors=True)
