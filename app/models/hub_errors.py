"""Turn huggingface_hub's and the HTTP client's exceptions into sentences for the user.

huggingface_hub 2.x raises ``HfHubHTTPError`` subclasses (with the response attached) for
HTTP errors and lets the ``httpx2`` client's ``TransportError`` through for network
failures. The status code and the hub's ``X-Error-Code`` header are what we decide on:
the library only refines a 401 into ``RepositoryNotFoundError`` on https URLs.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlparse

import httpx2
from huggingface_hub import get_token
from huggingface_hub.errors import (
    GatedRepoError,
    HfHubHTTPError,
    HFValidationError,
    LocalEntryNotFoundError,
    OfflineModeIsEnabled,
)

from app.errors import (
    DownloadError,
    HubNotFoundError,
    LicenceNotAcceptedError,
    NetworkError,
    NotLoggedInError,
    PaliDeskError,
)

LOGIN_HINT = "log in with `hf auth login` (or set HF_TOKEN to a Hugging Face access token)"
TOKENS_PAGE = "https://huggingface.co/settings/tokens"


def licence_page(repo_id: str) -> str:
    """Where a gated repository's licence is accepted (always on huggingface.co itself)."""
    return f"https://huggingface.co/{repo_id}"


def has_token(token: str | None) -> bool:
    """Whether a request for ``token`` carries one (given, ``HF_TOKEN`` or the token store)."""
    if token:
        return True
    try:
        return bool(get_token())
    except Exception:  # a broken OIDC setup: then no token was sent either
        return False


@contextmanager
def hub_errors(
    repo_id: str,
    *,
    token: str | None,
    endpoint: str,
    revision: str = "main",
    path: str | None = None,
    gated: bool = False,
) -> Iterator[None]:
    """Re-raise hub and network failures inside the block as DownloadError subclasses."""
    try:
        yield
    except PaliDeskError:
        raise
    except Exception as exc:
        error = describe(exc, repo_id, token=token, endpoint=endpoint, revision=revision,
                         path=path, gated=gated)
        if error is None:
            raise
        raise error from exc


def describe(
    exc: BaseException,
    repo_id: str,
    *,
    token: str | None,
    endpoint: str,
    revision: str = "main",
    path: str | None = None,
    gated: bool = False,
) -> PaliDeskError | None:
    """The user's version of ``exc``, or None when it is not a hub or network failure."""
    host = urlparse(endpoint).hostname or endpoint
    if isinstance(exc, LocalEntryNotFoundError) and exc.__cause__ is not None:
        # hf_hub_download's "not reachable and not in the cache": the cause says why.
        return describe(exc.__cause__, repo_id, token=token, endpoint=endpoint,
                        revision=revision, path=path, gated=gated)
    if isinstance(exc, OfflineModeIsEnabled):
        return NetworkError(
            "Downloads from Hugging Face are switched off on this computer (HF_HUB_OFFLINE "
            "is set). Unset it and try again."
        )
    if isinstance(exc, HFValidationError):
        return DownloadError(
            f"{repo_id!r} is not a valid Hugging Face model name; use the form owner/name, "
            "for example google/paligemma2-3b-pt-224."
        )
    if isinstance(exc, HfHubHTTPError) and exc.response is not None:
        code = exc.response.headers.get("X-Error-Code")
        is_gated = gated or code == "GatedRepo" or isinstance(exc, GatedRepoError)
        return http_error(exc.response.status_code, code, repo_id, token=token, host=host,
                          revision=revision, path=path, gated=is_gated)
    if isinstance(exc, httpx2.TransportError | TimeoutError | ConnectionError):
        return network_error(exc, host)
    return None


def network_error(exc: BaseException, host: str) -> NetworkError:
    """The "cannot reach the hub" sentence, with what went wrong in plain words."""
    what = describe_transport(exc)
    return NetworkError(
        f"PaliDesk could not reach {host} ({what}). Check your internet connection and try "
        "again; files already downloaded are kept."
    )


def describe_transport(exc: BaseException) -> str:
    """What went wrong with the connection, in a few plain words (never the address)."""
    if isinstance(exc, httpx2.ConnectError | ConnectionRefusedError):
        return "the connection failed"
    if isinstance(exc, httpx2.TimeoutException | TimeoutError):
        return "it stopped answering"
    return "the connection broke off"


def http_error(
    status: int,
    code: str | None,
    repo_id: str,
    *,
    token: str | None,
    host: str,
    revision: str = "main",
    path: str | None = None,
    gated: bool = False,
) -> DownloadError:
    """The sentence for an HTTP error status from the hub."""
    page = licence_page(repo_id)
    if status == 401:
        if has_token(token):
            return NotLoggedInError(
                f"Hugging Face did not accept your access token for {repo_id}. Please "
                f"{LOGIN_HINT} again, then try again."
            )
        if gated:
            return NotLoggedInError(
                f"{repo_id} is gated: only logged-in users who accepted its licence may "
                f"download it. Please {LOGIN_HINT}, accept the licence at {page}, then try "
                "again."
            )
        return NotLoggedInError(
            f"Hugging Face wants you to log in to download {repo_id} (it is private or "
            f"gated, or the name is wrong). Please {LOGIN_HINT}, then try again."
        )
    if status == 403:
        if gated:
            return LicenceNotAcceptedError(
                f"Your Hugging Face account has not been given access to {repo_id} yet. Open "
                f"{page}, accept the licence there with the account your token belongs to, "
                "then try again."
            )
        return LicenceNotAcceptedError(
            f"Hugging Face refused your access token for {repo_id}. If the model is gated, "
            f"accept its licence at {page}; if you use a fine-grained token, allow it to read "
            f"public gated repositories at {TOKENS_PAGE}. Then try again."
        )
    if status == 404:
        if code == "RevisionNotFound":
            return HubNotFoundError(f"{repo_id} has no revision called {revision!r}.")
        if path is not None and code != "RepoNotFound":
            return HubNotFoundError(
                f"Hugging Face has no file {path} in {repo_id} although its file list names "
                "it. Try again later; if it keeps failing, tell the repository's owners."
            )
        return HubNotFoundError(
            f"There is no model called {repo_id} on Hugging Face. Check the name (for "
            "example google/paligemma2-3b-pt-224)."
        )
    if status == 429:
        return DownloadError(
            "Hugging Face is limiting downloads from this computer (too many requests). "
            "Wait a few minutes, then try again."
        )
    if status >= 500:
        return NetworkError(
            f"{host} is having trouble right now (HTTP {status}). Try again in a few "
            "minutes; files already downloaded are kept."
        )
    return DownloadError(f"Hugging Face refused to send {repo_id} (HTTP {status}). "
                         "Try again later.")
