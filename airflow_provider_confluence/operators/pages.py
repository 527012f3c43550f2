"""Operators for Confluence page operations that run as long tasks: copy a tree, archive, delete a tree."""

from __future__ import annotations

import ast
from typing import TYPE_CHECKING, Any

from airflow_provider_confluence.operators.longtask import ConfluenceLongTaskOperator, require_confirmation

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from airflow.sdk import Context


class CopyPageHierarchyOperator(ConfluenceLongTaskOperator):
    """
    Copies page ``page_id`` and its descendants under ``destination_page_id``, then waits for the copy.

    The result (XCom) is the final status; its ``additional_details`` hold ``destinationUrl`` and
    ``destinationId``. See :class:`ConfluenceLongTaskOperator` for the waiting arguments.

    :param page_id: the root page of the tree to copy (templated).
    :param destination_page_id: the page that receives the copy (templated).
    :param title_options: ``{"prefix": ..., "replace": ..., "search": ...}`` for the copies' titles
        (templated).
    """

    template_fields = (
        *ConfluenceLongTaskOperator.template_fields,
        "page_id",
        "destination_page_id",
        "title_options",
    )

    def __init__(
        self,
        *,
        page_id: str,
        destination_page_id: str,
        copy_attachments: bool = True,
        copy_permissions: bool = True,
        copy_properties: bool = True,
        copy_labels: bool = True,
        copy_custom_contents: bool = True,
        title_options: Mapping[str, str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.page_id = page_id
        self.destination_page_id = destination_page_id
        self.copy_attachments = copy_attachments
        self.copy_permissions = copy_permissions
        self.copy_properties = copy_properties
        self.copy_labels = copy_labels
        self.copy_custom_contents = copy_custom_contents
        self.title_options = title_options

    def start_long_task(self, context: Context) -> str:
        return self.hook.copy_page_hierarchy(
            str(self.page_id),
            destination_page_id=str(self.destination_page_id),
            copy_attachments=self.copy_attachments,
            copy_permissions=self.copy_permissions,
            copy_properties=self.copy_properties,
            copy_labels=self.copy_labels,
            copy_custom_contents=self.copy_custom_contents,
            title_options=self.title_options,
        )


class ArchivePagesOperator(ConfluenceLongTaskOperator):
    """
    Archives pages (Confluence Cloud: at most 300 per job, one archive job at a time), then waits.

    :param page_ids: the pages to archive (templated; a list, or an XCom of a list).
    """

    template_fields = (*ConfluenceLongTaskOperator.template_fields, "page_ids")

    def __init__(self, *, page_ids: Sequence[str] | str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.page_ids = page_ids

    def start_long_task(self, context: Context) -> str:
        return self.hook.archive_pages(_page_id_list(self.page_ids))


class DeletePageTreeOperator(ConfluenceLongTaskOperator):
    """
    Moves page ``page_id`` and all its descendants to the trash, then waits.

    Destructive: pass ``confirm_delete=True``; a DAG that forgets it fails when it is parsed.

    :param page_id: the root page of the tree to delete (templated).
    """

    template_fields = (*ConfluenceLongTaskOperator.template_fields, "page_id")

    def __init__(self, *, page_id: str, confirm_delete: bool = False, **kwargs: Any) -> None:
        require_confirmation(type(self).__name__, confirm_delete, f"page tree {page_id!r}")
        super().__init__(**kwargs)
        self.page_id = page_id
        self.confirm_delete = confirm_delete

    def start_long_task(self, context: Context) -> str:
        return self.hook.delete_page_tree(str(self.page_id))


def _page_id_list(value: object) -> list[str]:
    """Page ids from a list, one id, or a rendered list (``"['1', '2']"``, ``"1,2"``)."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith(("[", "(")):
            try:
                value = ast.literal_eval(text)
            except (ValueError, SyntaxError):
                raise ValueError(f"page_ids {value!r} is not a list of page ids.") from None
        else:
            value = [part.strip() for part in text.split(",") if part.strip()]
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value]
    if not isinstance(value, (list, tuple)):
        raise ValueError(f"page_ids must be a list of page ids, got {type(value).__name__}.")
    for page_id in value:  # e.g. "None" rendered from a missing XCom, or a list of dicts
        if (
            isinstance(page_id, bool)
            or not isinstance(page_id, (str, int))
            or not str(page_id).strip().isdigit()
        ):
            raise ValueError(f"page_ids must be numeric Confluence page ids; got {page_id!r} in {value!r}.")
    return [str(page_id).strip() for page_id in value]
