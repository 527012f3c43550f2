"""Provider registration, found by Airflow through the ``apache_airflow_provider`` entry point."""

from __future__ import annotations

from typing import Any

from airflow_provider_confluence import __version__


def get_provider_info() -> dict[str, Any]:
    return {
        "package-name": "airflow-provider-confluence",
        "name": "Atlassian Confluence",
        "description": "Wait on Atlassian Confluence long-running tasks (space exports and deletions, "
        "page-tree copies, archiving) from Apache Airflow 3, deferrable.",
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": "Atlassian Confluence",
                "external-doc-url": "https://developer.atlassian.com/cloud/confluence/rest/v1/api-group-long-running-task/",
                "tags": ["software"],
            }
        ],
        "hooks": [
            {
                "integration-name": "Atlassian Confluence",
                "python-modules": ["airflow_provider_confluence.hooks.confluence"],
            }
        ],
        "operators": [
            {
                "integration-name": "Atlassian Confluence",
                "python-modules": [
                    "airflow_provider_confluence.operators.longtask",
                    "airflow_provider_confluence.operators.pages",
                    "airflow_provider_confluence.operators.spaces",
                ],
            }
        ],
        "sensors": [
            {
                "integration-name": "Atlassian Confluence",
                "python-modules": ["airflow_provider_confluence.sensors.longtask"],
            }
        ],
        "triggers": [
            {
                "integration-name": "Atlassian Confluence",
                "python-modules": ["airflow_provider_confluence.triggers.longtask"],
            }
        ],
        "connection-types": [
            {
                "connection-type": "confluence",
                "hook-class-name": "airflow_provider_confluence.hooks.confluence.ConfluenceHook",
                "hook-name": "Confluence",
                "ui-field-behaviour": {
                    "hidden-fields": ["schema", "port"],
                    "relabeling": {
                        "host": "Site or base URL",
                        "login": "Account e-mail (Cloud basic auth)",
                        "password": "API token / personal access token / OAuth token",
                    },
                    "placeholders": {
                        "host": "https://example.atlassian.net  or  https://wiki.example.com/confluence",
                        "login": "you@example.com (leave empty for a Data Center PAT or OAuth token)",
                        "password": "Cloud API token, Data Center PAT, or OAuth 2.0 access token",
                        "deployment": "cloud or datacenter (inferred from the host when empty)",
                        "auth_type": "basic with a Login, bearer without (when empty)",
                        "cloud_id": "only for OAuth apps and scoped tokens via api.atlassian.com",
                        "proxy": "http://proxy.example.com:3128",
                    },
                },
                "conn-fields": {
                    "deployment": {
                        "label": "Deployment",
                        "description": "Confluence Cloud or Data Center / Server. Empty: inferred "
                        "(*.atlassian.net and api.atlassian.com are Cloud).",
                        "schema": {"type": ["string", "null"], "enum": ["cloud", "datacenter", None]},
                    },
                    "auth_type": {
                        "label": "Authentication",
                        "description": "basic: account e-mail + API token (Cloud). bearer: personal access "
                        "token (Data Center) or OAuth 2.0 access token. Empty: basic when Login is set.",
                        "schema": {"type": ["string", "null"], "enum": ["basic", "bearer", None]},
                    },
                    "cloud_id": {
                        "label": "Cloud ID",
                        "description": "Route calls through Atlassian's gateway, "
                        "https://api.atlassian.com/ex/confluence/<cloud id> "
                        "(OAuth 2.0 apps and scoped API tokens).",
                        "schema": {"type": ["string", "null"]},
                    },
                    "verify_ssl": {
                        "label": "Verify TLS certificates",
                        "description": "On unless turned off. To trust a private CA, set the extra to the "
                        "CA bundle's path in the connection's JSON.",
                        "schema": {"type": ["boolean", "null"], "default": True},
                    },
                    "timeout": {
                        "label": "Request timeout (seconds)",
                        "description": "Per request; 30 when empty.",
                        "schema": {"type": ["number", "null"], "minimum": 1, "maximum": 3600},
                    },
                    "proxy": {
                        "label": "HTTP(S) proxy URL",
                        "description": "Environment proxy variables are not used; set the proxy here.",
                        "schema": {"type": ["string", "null"]},
                    },
                },
            }
        ],
    }
