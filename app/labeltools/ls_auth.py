"""The ``Authorization`` header Label Studio wants for its API key.

Label Studio has two kinds of key (label-studio-sdk's ``_build_headers`` and CLI
``_auth_headers`` do the same): a legacy token, sent as ``Token <key>``, and since 1.17
personal access tokens, which are JWT *refresh* tokens: they are exchanged at
``POST /api/token/refresh/`` for a short-lived access token, sent as ``Bearer <access>``.
A JWT access token is sent as ``Bearer`` as is. Exchanged access tokens are kept until
shortly before they expire, so a batch of tasks costs one exchange.
"""

from __future__ import annotations

import base64
import binascii
import json
import threading
import time
import urllib.error
import urllib.request
from typing import Any

from app.labeltools.errors import ImageSourceError

_MARGIN_S = 30.0  # refresh this long before the access token's own expiry
_cache: dict[tuple[str, str], tuple[str, float]] = {}
_lock = threading.Lock()


def jwt_claims(token: str) -> dict[str, Any] | None:
    """The (unverified) claims of a JWT, or None when ``token`` is not one."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        header, claims = (json.loads(_b64url(part)) for part in parts[:2])
    except (ValueError, binascii.Error, UnicodeDecodeError):
        return None
    if not isinstance(header, dict) or "alg" not in header or not isinstance(claims, dict):
        return None
    return claims


def auth_headers(
    api_key: str | None, base_url: str, opener: urllib.request.OpenerDirector,
    timeout_s: float,
) -> dict[str, str]:
    """The header to send with a request to the Label Studio at ``base_url``.

    Raises ``ImageSourceError`` when a refresh token cannot be exchanged.
    """
    if not api_key:
        return {}
    claims = jwt_claims(api_key)
    if claims is None:
        return {"Authorization": f"Token {api_key}"}
    if claims.get("token_type") != "refresh":
        return {"Authorization": f"Bearer {api_key}"}
    return {"Authorization": f"Bearer {_access_token(api_key, base_url, opener, timeout_s)}"}


def forget_access_token(api_key: str | None, base_url: str) -> None:
    """Drop the kept access token (Label Studio refused it: it was revoked or expired)."""
    with _lock:
        _cache.pop((base_url, api_key or ""), None)


def _access_token(
    refresh: str, base_url: str, opener: urllib.request.OpenerDirector, timeout_s: float
) -> str:
    key = (base_url, refresh)
    with _lock:
        kept = _cache.get(key)
    if kept is not None and kept[1] > time.time() + _MARGIN_S:
        return kept[0]
    request = urllib.request.Request(
        base_url.rstrip("/") + "/api/token/refresh/",
        data=json.dumps({"refresh": refresh}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with opener.open(request, timeout=timeout_s) as response:
            answer = json.loads(response.read(64 * 1024))
    except urllib.error.HTTPError as exc:
        raise ImageSourceError(
            f"Label Studio refused the API key ({exc.code} from /api/token/refresh/): "
            "check LABEL_STUDIO_API_KEY (a personal access token from Account & Settings)."
        ) from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise ImageSourceError(
            f"PaliDesk could not exchange the API key with Label Studio ({exc})."
        ) from None
    access = answer.get("access") if isinstance(answer, dict) else None
    if not isinstance(access, str) or not access:
        raise ImageSourceError("Label Studio's token refresh answered without an access token.")
    expires = (jwt_claims(access) or {}).get("exp")
    with _lock:
        _cache[key] = (access, float(expires) if isinstance(expires, int | float) else 0.0)
    return access


def _b64url(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
