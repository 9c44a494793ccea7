"""The checks every request passes before any handler sees it (a raw ASGI layer, so it
needs no web framework and guards every route alike):

- the Host header names the address the server listens on, or localhost: a web page
  whose own name was re-pointed at 127.0.0.1 (DNS rebinding) is turned away;
- the API key, when one is set (``Authorization: Bearer KEY``, or X-AnyLabeling's
  ``Token: KEY``); ``/health`` stays open for health checks;
- the Origin header, which browsers send with a page's cross-site requests: only the
  ``--cors-origin`` ones (or the server's own) pass, as without CORS a page cannot read
  an answer but its "simple" POST (text/plain, no preflight) would still run a job;
- the body size (413 past the limit, counted as it arrives, whatever Content-Length says).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import ipaddress
import json
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

OPEN_PATHS = frozenset({"/health", "/xanylabeling/health"})
LOCAL_NAMES = frozenset({"localhost", "127.0.0.1", "[::1]", "::1"})
DEFAULT_MAX_BODY = 32 * 1024 * 1024
# Origins of desktop apps' own pages, which Ollama's server lets in by default too.
APP_ORIGIN_SCHEMES = frozenset({"app", "file", "tauri", "vscode-webview", "vscode-file"})


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` keeps the server to this machine."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def is_wildcard(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).is_unspecified
    except ValueError:
        return False


def allowed_host_names(bind_host: str) -> frozenset[str] | None:
    """The names a request's Host header may carry; None = any (bound to every address,
    where the API key, required there, is the protection)."""
    if is_wildcard(bind_host):
        return None
    host = bind_host.lower()
    bracketed = f"[{host}]" if ":" in host and not host.startswith("[") else host
    return LOCAL_NAMES | {host, bracketed}


def host_name(header: str) -> str:
    """The Host header without its port (``[::1]:8637`` -> ``[::1]``)."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[: header.find("]") + 1] if "]" in header else header
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


def presented_key(headers: Iterable[tuple[bytes, bytes]]) -> str | None:
    """The key a request presents: ``Authorization: Bearer KEY``, ``Token: KEY``, or
    basic auth whose password is the key."""
    for name, value in headers:
        name_text = name.decode("latin-1").lower()
        text = value.decode("latin-1").strip()
        if name_text == "authorization" and text.lower().startswith("bearer "):
            return text[7:].strip()
        if name_text == "authorization" and text.lower().startswith("basic "):
            # Label Studio's ML backend setting has only basic auth: the password is the key.
            try:
                decoded = base64.b64decode(text[6:].strip(), validate=True).decode()
            except (binascii.Error, ValueError, UnicodeDecodeError):
                return None
            return decoded.partition(":")[2]
        if name_text == "token" and text:
            return text
    return None


class RequestGuard:
    def __init__(self, app: ASGIApp, *, bind_host: str, api_key: str | None,
                 max_body: int = DEFAULT_MAX_BODY, cors_origins: Iterable[str] = ()) -> None:
        self.app = app
        self.cors_origins = frozenset(cors_origins)
        self.hosts = allowed_host_names(bind_host)
        self.api_key = api_key
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = scope.get("headers", [])
        refusal = self._refusal(scope, headers)
        if refusal is not None:
            status, message, extra = refusal
            await _answer(send, status, message, extra)
            return
        received = 0
        started = refused = False

        async def counted_receive() -> Message:
            # Past the limit the client gets its 413 at once; the handler reads a
            # disconnect and whatever it answers afterwards is dropped.
            nonlocal received, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body:
                    refused = True
                    if not started:
                        await _answer(send, 413, self._too_large(), {})
                    return {"type": "http.disconnect"}
            return message

        async def watched_send(message: Message) -> None:
            nonlocal started
            if refused:
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted_receive, watched_send)
        except Exception:
            if not refused:
                raise

    def _refusal(self, scope: Scope,
                 headers: list[tuple[bytes, bytes]]) -> tuple[int, str, dict[str, str]] | None:
        values = {name.decode("latin-1").lower(): value.decode("latin-1")
                  for name, value in headers}
        if self.hosts is not None:
            host = host_name(values.get("host", ""))
            if host not in self.hosts:
                return 400, (f"The Host header {values.get('host', '')!r} does not name "
                             "this server; use http://127.0.0.1 or http://localhost."), {}
        origin = values.get("origin")
        if (origin is not None and scope.get("path") not in OPEN_PATHS
                and not self._origin_allowed(origin, values.get("host", ""))):
            return 403, (f"Requests from the web page at {origin!r} are refused: browsers "
                         "reach this server only from the origins given with "
                         "--cors-origin."), {}
        length = values.get("content-length", "")
        if length.isdigit() and int(length) > self.max_body:
            return 413, self._too_large(), {}
        if (self.api_key is not None and scope.get("path") not in OPEN_PATHS
                and scope.get("method") != "OPTIONS"):
            key = presented_key(headers)
            if key is None or not hmac.compare_digest(key.encode(), self.api_key.encode()):
                return 401, ("This server needs an API key: send it as "
                             "'Authorization: Bearer KEY' (or 'Token: KEY')."), {
                    "www-authenticate": "Bearer"}
        return None

    def _origin_allowed(self, origin: str, host: str) -> bool:
        if origin in self.cors_origins or "*" in self.cors_origins:
            return True
        scheme, _, netloc = origin.lower().partition("://")
        if scheme in APP_ORIGIN_SCHEMES:
            return True  # a desktop app's own page (Electron, Tauri, VS Code), as Ollama
        # The server's own pages (it serves none today), and pages served from this
        # machine, as Ollama allows them: a remote page's Origin names its own host.
        return scheme in ("http", "https") and (
            netloc == host.strip().lower() or host_name(netloc) in LOCAL_NAMES)

    def _too_large(self) -> str:
        return (f"The request is larger than this server accepts "
                f"({self.max_body // (1024 * 1024)} MB).")


async def _answer(send: Send, status: int, message: str, extra: dict[str, str]) -> None:
    body = json.dumps({"error": {"message": message, "type": "invalid_request_error",
                                 "param": None, "code": status}}).encode()
    headers = [(b"content-type", b"application/json"),
               (b"content-length", str(len(body)).encode())]
    headers += [(k.encode(), v.encode()) for k, v in extra.items()]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
