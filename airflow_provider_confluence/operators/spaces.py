"""Operators for Confluence space operations that run as long tasks."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow_provider_confluence.operators.longtask import ConfluenceLongTaskOperator, require_confirmation

if TYPE_CHECKING:
    from airflow.sdk import Context


class DeleteSpaceOperator(ConfluenceLongTaskOperator):
    """
    Deletes space ``space_key`` (Cloud: to the trash), then waits for the deletion.

    Destructive: pass ``confirm_delete=True``; a DAG that forgets it fails when it is parsed.

    :param space_key: the key of the space to delete (templated).
    """

    template_fields = (*ConfluenceLongTaskOperator.template_fields, "space_key")

    def __init__(self, *, space_key: str, confirm_delete: bool = False, **kwargs: Any) -> None:
        require_confirmation(type(self).__name__, confirm_delete, f"space {space_key!r}")
        super().__init__(**kwargs)
        self.space_key = space_key
        self.confirm_delete = confirm_delete

    def start_long_task(self, context: Context) -> str:
        return self.hook.delete_space(str(self.space_key))
