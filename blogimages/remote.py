"""Helpers for backends that call a remote image server: HTTP errors, ``Retry-After``,
images in JSON answers, and blocking calls watched for a cancel.

Shared by :mod:`blogimages.providers` and :mod:`blogimages.comfyui`, so it imports neither.
"""

from __future__ import annotations

import base64
import email.utils
import math
import re
import threading
import time
from collections.abc import Mapping
from typing import Any, Callable

import requests

from .exceptions import PermanentProviderError, ProviderError, TransientProviderError

# RFC 9110 section 10.2.3: delta-seconds is one or more digits, nothing else.
_DELTA_SECONDS = re.compile(r"\d+")
_MILLISECONDS = re.compile(r"\d+(\.\d+)?")
IMAGE_MAGIC = (
    (b"\x89PNG", "image/png"),
    (b"\xff\xd8", "image/jpeg"),
    (b"GIF8", "image/gif"),
)


def clip(text: Any, limit: int = 300) -> str:
    """``text`` on one line, cut to ``limit`` characters with an ellipsis."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


# --- HTTP errors ---------------------------------------------------------------------------------------


def connection_reason(exc: BaseException) -> str:
    """A short cause for a failed connection (urllib3 nests the real one several levels deep)."""
    if isinstance(exc, requests.Timeout):
        return "timed out"
    innermost = exc
    while innermost.__cause__ is not None or innermost.__context__ is not None:
        innermost = innermost.__cause__ or innermost.__context__
    for candidate in (innermost, exc):
        text = str(candidate)
        if "Connection refused" in text or isinstance(candidate, ConnectionRefusedError):
            return "connection refused"
        if "Name or service not known" in text or "nodename nor servname" in text:
            return "unknown host name"
        if "reset by peer" in text or isinstance(candidate, ConnectionResetError):
            return "connection reset"
    if isinstance(exc, requests.ConnectionError):
        return "connection failed"
    return clip(exc.__class__.__name__ + (f": {exc}" if str(exc) else ""), 200)


def is_transient_status(status: int) -> bool:
    """Worth retrying: a request timeout, a rate limit or a server error."""
    return status in (408, 429) or status >= 500


def status_error(response: requests.Response, *, transient: str, permanent: str) -> ProviderError:
    """The error for an error answer: ``transient`` (with its Retry-After) or ``permanent``."""
    if is_transient_status(response.status_code):
        return TransientProviderError(transient, retry_after=retry_after(response.headers))
    return PermanentProviderError(permanent)


def json_body(response: requests.Response) -> Any:
    """The answer's JSON, or None when it is not JSON (an error page from a proxy)."""
    try:
        return response.json()
    except ValueError:
        return None


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (RFC 9110: delta-seconds or an HTTP date).

    A date in the past means "now" (0.0); anything else (negative, fractional, garbage) is None.
    """
    if value is None:
        return None
    value = value.strip()
    if _DELTA_SECONDS.fullmatch(value):
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None  # an HTTP date is always GMT; one without a zone is not one
    seconds = when.timestamp() - (time.time() if now is None else now)
    return max(0.0, seconds) if math.isfinite(seconds) else None


def retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait from an answer's headers: ``retry-after-ms`` (OpenAI's), else ``Retry-After``."""
    milliseconds = (headers.get("retry-after-ms") or "").strip()
    if _MILLISECONDS.fullmatch(milliseconds):
        return float(milliseconds) / 1000
    return parse_retry_after(headers.get("retry-after"))


# --- images in answers -----------------------------------------------------------------------------------


def strip_data_url(value: str) -> str:
    """The base64 part of a ``data:image/png;base64,...`` URL; other text as it is."""
    return value.split(",", 1)[1] if value.startswith("data:") and "," in value else value


def decode_base64_image(value: str) -> bytes:
    """Base64 (or a data URL) to bytes; ValueError (binascii.Error is one) if it is not base64."""
    return base64.b64decode(strip_data_url(value), validate=True)


def image_type(content: bytes) -> str:
    """The content type of PNG, JPEG, GIF or WebP bytes; "" for anything else."""
    for magic, content_type in IMAGE_MAGIC:
        if content.startswith(magic):
            return content_type
    if content[:4] == b"RIFF" and content[8:12] == b"WEBP":
        return "image/webp"
    return ""


# --- a blocking call, watched ------------------------------------------------------------------------------


class BlockingCall:
    """Runs ``fn`` in a daemon thread so the job's thread keeps polling for cancels and progress.

    Daemon: if the job stops waiting (a cancel the server cannot act on), the worker
    process must still be able to exit.
    """

    def __init__(self, fn: Callable[[], Any], *, name: str):
        self._fn = fn
        self._done = threading.Event()
        self._value: Any = None
        self._error: BaseException | None = None
        threading.Thread(target=self._run, name=name, daemon=True).start()

    def _run(self) -> None:
        try:
            self._value = self._fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting thread by result()
            self._error = exc
        finally:
            self._done.set()

    def wait(self, seconds: float) -> bool:
        """True once the call has returned; else False after ``seconds``."""
        return self._done.wait(seconds)

    def result(self) -> Any:
        """What the call returned; raises what it raised."""
        if self._error is not None:
            raise self._error
        return self._value
