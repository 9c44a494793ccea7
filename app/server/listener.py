"""The server's listening socket, bound before anything loads (``palidesk serve`` and the
window's Tools › Local Server… both start through it). Light: no web stack."""

from __future__ import annotations

import socket

from app.errors import PaliDeskError

# Not 1234 (LM Studio), 8000 (X-AnyLabeling-Server), 8080 (llama-server, Label Studio),
# 9090 (Label Studio ML backends) or 11434 (Ollama), so PaliDesk can run beside them.
DEFAULT_PORT = 8637


class ServeError(PaliDeskError):
    """The server cannot start as asked; the message says why and what to do."""


def listen(host: str, port: int) -> socket.socket:
    """Bind before anything loads, so a taken port is said at once, in words."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ServeError(f"--host {host} is not an address of this machine ({exc}).") from None
    family, _, _, _, address = infos[0]
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind(address)
        listener.listen(128)
    except OSError as exc:
        listener.close()
        raise ServeError(f"Cannot listen on {host}:{port} ({exc.strerror or exc}); another "
                         "server may use it: choose another with --port.") from None
    listener.set_inheritable(True)
    return listener
