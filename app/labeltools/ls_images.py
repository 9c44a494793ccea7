"""Which image a Label Studio task points at, whether PaliDesk may read it, and reading it.

A task's image is a Label Studio URL: ``/data/upload/3/abc.jpg`` (an upload),
``/data/local-files/?d=photos/cat.jpg`` (local-files storage), or the same with Label
Studio's address in front. A request can put any URL there, so a server that fetched
whatever it was given could be made to reach anything the user's machine can (request
forgery). PaliDesk reads only:

- URLs on the configured Label Studio (``LABEL_STUDIO_URL``, same scheme, host and port),
  sent with its API key (app/labeltools/ls_auth.py: ``Token`` for a legacy key, ``Bearer``
  for a personal access token); the URL fetched is rebuilt from that address, never taken
  from the request;
- local-files paths inside the folder the user allowed
  (``LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT``, Label Studio's own name for it), checked
  after following symlinks, with ``..`` refused outright.

Everything else (another host, ``file:``, ``s3:`` …, redirects) is refused with a sentence.
"""

from __future__ import annotations

import os
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import parse_qs, urlsplit, urlunsplit

from app.labeltools.errors import ImageSourceError
from app.labeltools.ls_auth import auth_headers, forget_access_token

LOCAL_FILES_PREFIX = "/data/local-files"
DEFAULT_TIMEOUT_S = 10.0
DEFAULT_MAX_BYTES = 32 * 1024 * 1024  # the server's request body limit
_DEFAULT_PORTS = {"http": 80, "https": 443}
_CHUNK = 64 * 1024


@dataclass(frozen=True)
class LabelStudioAccess:
    """Where PaliDesk may read Label Studio's images from (None: nowhere of that kind)."""

    url: str | None = None  # e.g. "http://localhost:8080"
    api_key: str | None = None
    local_files_root: Path | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> LabelStudioAccess:
        """Read ``LABEL_STUDIO_URL``, ``LABEL_STUDIO_API_KEY`` and
        ``LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT`` (unset or empty: None)."""
        env = os.environ if environ is None else environ
        root = env.get("LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT", "").strip()
        return cls(
            url=env.get("LABEL_STUDIO_URL", "").strip() or None,
            api_key=env.get("LABEL_STUDIO_API_KEY", "").strip() or None,
            local_files_root=Path(root) if root else None,
        )


@dataclass(frozen=True)
class ImageSource:
    """A checked place to read one image from: a URL on Label Studio (``label_studio_url``,
    with ``api_key``), or a local file."""

    url: str | None = None
    label_studio_url: str | None = None
    api_key: str | None = None
    path: Path | None = None


def resolve_image_reference(reference: str, access: LabelStudioAccess) -> ImageSource:
    """Decide where ``reference`` (a task's image field) may be read from.

    Raises ``ImageSourceError`` with the reason for anything PaliDesk will not read.
    """
    text = reference.strip() if isinstance(reference, str) else ""
    if not text:
        raise ImageSourceError("The task's image field is empty.")
    try:
        parts = urlsplit(text)
        port = parts.port  # raises for a port that is not one (":abc", ":99999")
    except ValueError as exc:  # e.g. an unclosed "[" of an IPv6 address
        raise ImageSourceError(
            f'"{_short(text)}" is not a URL PaliDesk can read ({exc}).'
        ) from None
    scheme = parts.scheme.lower()
    if scheme and scheme not in ("http", "https"):
        raise ImageSourceError(
            f'PaliDesk does not read "{scheme}:" image URLs; it reads images from the '
            "configured Label Studio or its local-files folder only."
        )
    if scheme:
        _check_same_origin(parts.scheme, parts.hostname, port, access)
    elif not text.startswith("/") or text.startswith("//"):
        raise ImageSourceError(
            f'"{_short(text)}" is not a Label Studio image URL (they start with /data/ or '
            "with Label Studio's address)."
        )
    if parts.path.startswith(LOCAL_FILES_PREFIX) and access.local_files_root is not None:
        return ImageSource(path=_local_file(parts.query, access.local_files_root))
    return _on_label_studio(parts.path, parts.query, access)


def fetch_image_bytes(
    source: ImageSource,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> bytes:
    """The bytes of a checked image source, at most ``max_bytes``, within ``timeout_s``.

    Redirects are refused (they could lead to another host). Raises ``ImageSourceError``.
    """
    if source.path is not None:
        return _read_file(source.path, max_bytes)
    if source.url is None:
        raise ImageSourceError("There is no image to read.")
    # No proxies (the API key goes to Label Studio only) and no redirects.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect())
    base = source.label_studio_url or source.url
    deadline = time.monotonic() + timeout_s
    try:
        headers = auth_headers(source.api_key, base, opener, timeout_s)
        request = urllib.request.Request(source.url, headers=headers)
        with opener.open(request, timeout=timeout_s) as response:
            length = response.headers.get("Content-Length")
            if length is not None and length.isdigit() and int(length) > max_bytes:
                raise _too_large(max_bytes)
            return _read_limited(response, max_bytes, deadline)
    except urllib.error.HTTPError as exc:
        if exc.code == 401:
            forget_access_token(source.api_key, base)  # exchanged anew next time
        raise _http_error(exc.code, source.url) from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ImageSourceError(
            f"PaliDesk could not read the image from Label Studio ({reason})."
        ) from None


def _check_same_origin(
    scheme: str, host: str | None, port: int | None, access: LabelStudioAccess
) -> None:
    where = f"{scheme}://{host or ''}"
    if access.url is None:
        raise ImageSourceError(
            f"PaliDesk reads images over HTTP only from Label Studio, and no Label Studio "
            f"address is set (LABEL_STUDIO_URL), so it will not fetch {where}."
        )
    allowed = urlsplit(access.url)
    if _origin(scheme, host, port) != _origin(allowed.scheme, allowed.hostname, allowed.port):
        raise ImageSourceError(
            f"PaliDesk fetches images only from the Label Studio at {access.url}; "
            f"{where} is another host, so the image was not fetched."
        )


def _origin(scheme: str, host: str | None, port: int | None) -> tuple[str, str, int | None]:
    scheme = scheme.lower()
    return scheme, (host or "").lower().rstrip("."), port or _DEFAULT_PORTS.get(scheme)


def _on_label_studio(path: str, query: str, access: LabelStudioAccess) -> ImageSource:
    if access.url is None:
        raise ImageSourceError(
            "The image is on Label Studio, but no Label Studio address is set: start the "
            "server with LABEL_STUDIO_URL (and LABEL_STUDIO_API_KEY) set."
        )
    base = urlsplit(access.url)
    # Rebuilt from the configured address: nothing of the request's host survives.
    prefix = base.path.rstrip("/")
    url = urlunsplit((base.scheme, base.netloc, prefix + path, query, ""))
    return ImageSource(url=url, label_studio_url=access.url, api_key=access.api_key)


def _local_file(query: str, root: Path) -> Path:
    # As Label Studio's /data/local-files/ view reads it: decoded once, the last d wins.
    values = parse_qs(query, keep_blank_values=True).get("d")
    if not values or not values[-1].strip():
        raise ImageSourceError("The local-files URL names no file (its ?d= is empty).")
    wanted = values[-1]
    if "\0" in wanted:  # Path.resolve raises ValueError on it, not OSError
        raise ImageSourceError("The local-files path holds a NUL character, which no file "
                               "name does.")
    # Label Studio writes "/" on every platform; ".." is refused before any resolving.
    posix = PurePosixPath(wanted.replace("\\", "/"))
    pieces = posix.parts
    if ".." in pieces:
        raise ImageSourceError(
            f'The local-files path "{_short(wanted)}" climbs out of its folder with "..", '
            "so PaliDesk will not read it."
        )
    try:
        allowed = root.resolve(strict=True)
    except OSError:
        raise ImageSourceError(
            f"The local-files folder {root} does not exist; check "
            "LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT."
        ) from None
    # "?d=" is always relative to the folder, a leading "/" too (Label Studio's rule).
    candidate = allowed.joinpath(*[piece for piece in pieces if piece != "/"])
    try:
        target = candidate.resolve(strict=True)  # follows symlinks: checked below
    except OSError:
        raise ImageSourceError(
            f'The local file "{_short(wanted)}" does not exist in {allowed}.'
        ) from None
    if not target.is_relative_to(allowed):
        raise ImageSourceError(
            f'The local file "{_short(wanted)}" leads outside {allowed} (through a link), '
            "so PaliDesk will not read it."
        )
    if not target.is_file():
        raise ImageSourceError(f'The local-files path "{_short(wanted)}" is not a file.')
    return target


def _read_file(path: Path, max_bytes: int) -> bytes:
    try:
        with path.open("rb") as handle:
            data = handle.read(max_bytes + 1)
    except OSError as exc:
        raise ImageSourceError(f"PaliDesk could not read {path}: {exc.strerror}.") from None
    if len(data) > max_bytes:
        raise _too_large(max_bytes)
    return data


def _read_limited(response: object, max_bytes: int, deadline: float) -> bytes:
    chunks: list[bytes] = []
    total = 0
    while True:
        # The socket timeout bounds each read; the deadline bounds a slow trickle.
        if time.monotonic() > deadline:
            raise ImageSourceError("Label Studio took too long to send the image.")
        chunk = response.read(_CHUNK)  # type: ignore[attr-defined]
        if not chunk:
            return b"".join(chunks)
        total += len(chunk)
        if total > max_bytes:
            raise _too_large(max_bytes)
        chunks.append(chunk)


def _http_error(code: int, url: str) -> ImageSourceError:
    if code in (301, 302, 303, 307, 308):
        return ImageSourceError(
            "Label Studio answered the image request with a redirect, which PaliDesk does "
            "not follow (it could lead to another host); use uploads or local files."
        )
    if code in (401, 403):
        return ImageSourceError(
            f"Label Studio refused the image ({code}): check LABEL_STUDIO_API_KEY."
        )
    return ImageSourceError(f"Label Studio answered {code} for the image {_short(url)}.")


def _too_large(max_bytes: int) -> ImageSourceError:
    size = (f"{max_bytes / 2**20:g} MB" if max_bytes >= 2**20 else f"{max_bytes:,} bytes")
    return ImageSourceError(f"The image is larger than {size}, PaliDesk's limit for one image.")


def _short(text: str, limit: int = 120) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Turns every redirect into an HTTPError (handled as a refusal above)."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # type: ignore[override]
        return None
