"""
Errors raised by the Confluence provider.

The tree, from the most general to the most specific::

    ConfluenceError                      any error of this provider
    ├── ConfluenceConfigError            bad connection settings or a bad task id; nothing was sent
    ├── ConfluenceAPIError               Confluence (or something in front of it) answered badly
    │   ├── ConfluenceAuthError          401, 403, a login page or a redirect to an SSO host
    │   ├── ConfluenceNotFoundError      404: no such task, or not visible to this user
    │   ├── ConfluenceRequestError       400 and other 4xx: Confluence refused the request
    │   ├── ConfluenceBadResponseError   an answer that is not what the API promises (not JSON, not a status)
    │   ├── ConfluenceTLSError           the server's certificate could not be verified
    │   └── ConfluenceTransientError     5xx, timeouts, resets: retried, raised once retries are spent
    │       └── ConfluenceRateLimitError 429 (or 503 with Retry-After): carries the server's wait
    └── LongTaskFailed                   the Confluence task finished with ``successful=false``
        └── LongTaskStalled              its clock stopped before it reported being done

``LongTaskFailed`` is also an ``AirflowFailException``: the Confluence task's outcome is final, so
Airflow does not retry, and a sensor with ``soft_fail=True`` skips (in every mode). The other errors
are plain exceptions: Airflow's retries apply, and ``soft_fail`` does not hide a broken connection.

Messages name the object (task id, URL without credentials) and say what to check. They never
contain a credential: URLs are built from the connection's host, which never carries one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow.sdk.exceptions import AirflowFailException

if TYPE_CHECKING:
    from airflow_provider_confluence.longtask import LongTask, Message


class ConfluenceError(Exception):
    """Base class of every error this provider raises."""


class ConfluenceConfigError(ConfluenceError, ValueError):
    """The connection or an argument is unusable; raised before any request is sent."""


class ConfluenceAPIError(ConfluenceError):
    """Confluence answered with something other than the expected success."""

    def __init__(self, message: str, *, url: str | None = None, status_code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.url = url
        self.status_code = status_code


class ConfluenceAuthError(ConfluenceAPIError):
    """Authentication or permission failure: check the login, the token and the base URL."""


class ConfluenceNotFoundError(ConfluenceAPIError):
    """The resource does not exist, or this user may not see it."""


class ConfluenceRequestError(ConfluenceAPIError):
    """Confluence refused the request (400 and other 4xx)."""


class ConfluenceBadResponseError(ConfluenceAPIError):
    """The answer is not what the API promises: not JSON, or JSON that is not a task status."""


class ConfluenceTLSError(ConfluenceAPIError):
    """TLS verification failed: point extra ``verify_ssl`` at the right CA bundle."""


class ConfluenceTransientError(ConfluenceAPIError):
    """A temporary failure (5xx, timeout, reset) that outlasted the retries."""

    #: True when the retry was not attempted because its wait would have passed the caller's deadline.
    deadline_reached: bool = False


class ConfluenceRateLimitError(ConfluenceTransientError):
    """Confluence asked us to slow down (429, or 503 with ``Retry-After``)."""

    def __init__(
        self,
        message: str,
        *,
        url: str | None = None,
        status_code: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, url=url, status_code=status_code)
        self.retry_after = retry_after


class LongTaskFailed(ConfluenceError, AirflowFailException):
    """
    The Confluence long task finished unsuccessfully.

    It is an ``AirflowFailException``: retrying the Airflow task cannot change the outcome of a
    Confluence task that has already failed, so Airflow fails without retrying.
    """

    def __init__(
        self,
        message: str,
        *,
        task_id: str,
        error_keys: tuple[str, ...] = (),
        errors: tuple[Message, ...] = (),
        task: LongTask | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.task_id = task_id
        self.error_keys = error_keys
        self.errors = errors
        self.task = task


class LongTaskStalled(LongTaskFailed):
    """The task's clock stopped (``elapsedTime`` no longer grows) but it never reported being done."""
