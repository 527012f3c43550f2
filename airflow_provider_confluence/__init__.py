"""Apache Airflow provider for Atlassian Confluence long-running tasks."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
