"""One exception family for blogimages.

Jobs decide between retrying and failing from the class of the error, never from its
text: a :class:`TransientProviderError` is retried with backoff, a
:class:`PermanentProviderError` fails the result at once.
"""

from __future__ import annotations


class BlogImagesError(Exception):
    """Base class of every error blogimages raises on purpose."""


class InvalidTransition(BlogImagesError):
    """A status change that the transition table does not allow."""


class ConcurrentTransition(BlogImagesError):
    """The row changed status under us (a double click, or a worker won the race)."""


class QueueUnavailable(BlogImagesError):
    """Redis could not be reached; the result stays queued and can be re-queued."""


class UploadRejected(BlogImagesError):
    """An uploaded file is not an acceptable image; the message says why."""


class StorageUnavailable(BlogImagesError):
    """The file storage (a disk, an S3 bucket) could not take a file right now.

    ``str(exc)`` is one sentence for editors. Worth trying again later: a job records it
    as a transient failure, an upload shows it and stores nothing.
    """

    transient = True


class ProviderError(BlogImagesError):
    """A provider could not produce an image. ``str(exc)`` is shown to editors."""

    transient = False

    def __init__(self, message: str, *, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class TransientProviderError(ProviderError):
    """Worth retrying: connection errors, timeouts, 429 and 5xx answers."""

    transient = True


class PermanentProviderError(ProviderError):
    """Retrying cannot help: bad input, a safety block, a missing model."""


class ProviderUnavailable(TransientProviderError):
    """The provider is unhealthy or unreachable right now (used by ``auto`` routing)."""


class GenerationCancelled(BlogImagesError):
    """Raised inside a provider when the result was cancelled while it waited."""
