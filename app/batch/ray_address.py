"""Is a Ray cluster address reachable at all? Asked before ``ray.init``, which retries a
closed or unreachable port for minutes before it gives up."""

from __future__ import annotations

import socket
from urllib.parse import urlsplit

CONNECT_TIMEOUT_S = 10.0


def host_and_port(address: str) -> tuple[str, int] | None:
    """(host, port) of ``host:port`` or ``ray://host:port``; None for "auto", "local" or
    an address without a port (Ray resolves those itself)."""
    if address in ("auto", "local") or ":" not in address:
        return None
    parts = urlsplit(address if "://" in address else f"//{address}")
    try:
        port = parts.port
    except ValueError:
        return None
    if parts.hostname is None or port is None:
        return None
    return parts.hostname, port


def check_reachable(address: str, timeout_s: float = CONNECT_TIMEOUT_S) -> str | None:
    """Why nothing answers at ``address`` (a short clause), or None when a connection
    opens (or the address is one Ray looks up itself)."""
    target = host_and_port(address)
    if target is None:
        return None
    host, port = target
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return None
    except socket.gaierror:
        return f"the host name {host!r} is not known"
    except TimeoutError:
        return f"nothing answered on port {port} within {timeout_s:g} s"
    except ConnectionRefusedError:
        return f"nothing is listening on port {port} of {host}"
    except OSError as exc:
        return f"{host}:{port} cannot be reached ({exc.strerror or exc})"
