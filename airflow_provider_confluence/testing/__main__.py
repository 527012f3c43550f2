"""``python -m airflow_provider_confluence.testing``: run the Confluence simulator from a shell."""

from __future__ import annotations

import sys

from airflow_provider_confluence.testing.cli import main

if __name__ == "__main__":
    sys.exit(main())
