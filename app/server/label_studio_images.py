"""Task images of a Label Studio project, fetched only from where the user allowed:
the configured Label Studio address (with its API key) or a local-files folder. Any other
host is refused, whatever the task says (a task is data anyone may have imported)."""

from __future__ import annotations

import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from app.server.request_errors import RequestRefused
from app.server.served_images import image_bytes

_LOCAL_FILES = "/data/local-files/"
TIMEOUT_S = 30


@dataclass(frozen=True)
class LabelStudioAccess:
    url: str | None = None  # e.g. http://localhost:8080 (LABEL_STUDIO_URL)
    api_key: str | None = None  # sent as "Authorization: Token KEY"
    files_root: Path | None = None  # LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT
    max_bytes: int = 32 * 1024 * 1024


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        return None  # a redirect could lead to any host: it is an error instead


def task_image(reference: str, access: LabelStudioAccess, field: str) -> bytes:
    """The bytes of the image a task names (blocking: call it off the event loop)."""
    if reference.startswith("data:"):
        return image_bytes(reference, field)
    parsed = urllib.parse.urlsplit(reference)
    if parsed.path.startswith(_LOCAL_FILES) and access.files_root is not None:
        if parsed.scheme and not _same_origin(reference, access.url):
            raise _not_allowed(reference, field)
        return _local_file(parsed, access, field)
    if not parsed.scheme and reference.startswith("/") and access.url:
        return _fetch(access.url.rstrip("/") + reference, access, field)
    if parsed.scheme in ("http", "https") and _same_origin(reference, access.url):
        return _fetch(reference, access, field)
    raise _not_allowed(reference, field)


def _same_origin(url: str, allowed: str | None) -> bool:
    if not allowed:
        return False
    a, b = urllib.parse.urlsplit(url), urllib.parse.urlsplit(allowed)
    return (a.scheme, a.hostname, a.port) == (b.scheme, b.hostname, b.port)


def _not_allowed(reference: str, field: str) -> RequestRefused:
    return RequestRefused(
        400, f"{field}: {reference[:200]} is not on the Label Studio server PaliDesk was "
             "given (--label-studio-url) nor in its local-files folder "
             "(--label-studio-files); PaliDesk fetches images from nowhere else.", field)


def _local_file(parsed: urllib.parse.SplitResult, access: LabelStudioAccess,
                field: str) -> bytes:
    assert access.files_root is not None
    wanted = urllib.parse.parse_qs(parsed.query).get("d", [""])[0]
    root = access.files_root.resolve()
    path = (root / wanted).resolve()
    if not wanted or not path.is_relative_to(root) or not path.is_file():
        raise RequestRefused(400, f"{field}: {wanted!r} is not a file under the local-files "
                                  f"folder {root}.", field)
    if path.stat().st_size > access.max_bytes:
        raise RequestRefused(413, f"{field}: {path.name} is larger than this server "
                                  "accepts.", field)
    return path.read_bytes()


def _fetch(url: str, access: LabelStudioAccess, field: str) -> bytes:
    headers = {"Authorization": f"Token {access.api_key}"} if access.api_key else {}
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(urllib.request.Request(url, headers=headers),
                         timeout=TIMEOUT_S) as response:
            data = response.read(access.max_bytes + 1)
    except urllib.error.HTTPError as exc:
        raise RequestRefused(400, f"{field}: Label Studio answered {exc.code} for "
                                  f"{url[:200]}.", field) from None
    except (urllib.error.URLError, OSError) as exc:
        raise RequestRefused(400, f"{field}: Label Studio at {access.url} cannot be "
                                  f"reached ({exc}).", field) from None
    if len(data) > access.max_bytes:
        raise RequestRefused(413, f"{field}: the image is larger than this server accepts.",
                             field)
    return data
