"""What to download from a Hugging Face model repository: safe files only, never pickles."""

from __future__ import annotations

import os
from dataclasses import dataclass
from urllib.parse import urlparse

from huggingface_hub import HfApi
from huggingface_hub.hf_api import RepoSibling

from app.errors import DownloadError
from app.models.hub_errors import hub_errors

DEFAULT_ENDPOINT = "https://huggingface.co"
# Seconds to wait for the file list; the hub answers in well under a second.
API_TIMEOUT_S = 30.0

# Everything the converter reads besides the weights.
WANTED_NAMES = frozenset({
    "config.json",
    "generation_config.json",
    "preprocessor_config.json",
    "tokenizer.model",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "model.safetensors.index.json",
})
WEIGHTS_SUFFIX = ".safetensors"
# Never fetched: pickle-based weights can run code when loaded, the others are formats the
# converter does not read. Listed so the refusal can name what the repository offers instead.
REFUSED_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".ckpt", ".msgpack", ".h5")


@dataclass(frozen=True)
class RemoteFile:
    """One file of a repository, with the checksum the hub lists for it."""

    path: str
    size: int
    sha256: str | None = None  # LFS object id: set for large files (the weights)
    git_sha1: str | None = None  # git blob id: set for small files kept in git itself

    @property
    def is_weights(self) -> bool:
        return self.path.endswith(WEIGHTS_SUFFIX)


@dataclass(frozen=True)
class DownloadPlan:
    """The files to fetch from ``repo_id`` at one commit, small files first."""

    repo_id: str
    revision: str
    commit: str
    files: list[RemoteFile]
    gated: bool = False
    endpoint: str = DEFAULT_ENDPOINT

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)

    @property
    def weights_bytes(self) -> int:
        return sum(f.size for f in self.files if f.is_weights)


def hub_endpoint(endpoint: str | None = None) -> str:
    """``endpoint``, else ``HF_ENDPOINT``, else huggingface.co (read now, not at import)."""
    return (endpoint or os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")


def hub_host(endpoint: str) -> str:
    """The host name to show the user (``huggingface.co`` unless a mirror is used)."""
    return urlparse(endpoint).hostname or endpoint


def is_wanted(path: str) -> bool:
    """True for the config, tokenizer and safetensors files at the repository's top level."""
    # Sub-folders hold other variants (original checkpoints, adapters): never mixed in.
    return "/" not in path and (path in WANTED_NAMES or path.endswith(WEIGHTS_SUFFIX))


def plan_download(
    repo_id: str,
    *,
    revision: str = "main",
    token: str | None = None,
    endpoint: str | None = None,
) -> DownloadPlan:
    """List ``repo_id`` on the hub and choose the files to download.

    ``token=None`` uses the library's own token (``HF_TOKEN``, then ``hf auth login``'s
    store). Raises a DownloadError subclass the user can act on.
    """
    base = hub_endpoint(endpoint)
    api = HfApi(endpoint=base, token=token)
    with hub_errors(repo_id, token=token, endpoint=base, revision=revision):
        info = api.model_info(repo_id, revision=revision, files_metadata=True,
                              timeout=API_TIMEOUT_S)
    files: list[RemoteFile] = []
    for sibling in info.siblings or []:
        if not is_wanted(sibling.rfilename):
            continue
        size = sibling.lfs.size if sibling.lfs is not None else sibling.size
        if size is None:
            raise DownloadError(
                f"Hugging Face did not say how large {sibling.rfilename} in {repo_id} is. "
                "Try again later."
            )
        files.append(RemoteFile(
            path=sibling.rfilename,
            size=size,
            sha256=sibling.lfs.sha256 if sibling.lfs is not None else None,
            # An LFS file's blob id is its pointer's, not its content's: no use to us.
            git_sha1=sibling.blob_id if sibling.lfs is None else None,
        ))
    if not any(f.is_weights for f in files):
        raise DownloadError(_no_safetensors_sentence(repo_id, info.siblings or []))
    files.sort(key=lambda f: (f.is_weights, f.path))  # small files first: errors show early
    return DownloadPlan(repo_id=repo_id, revision=revision, commit=info.sha or revision,
                        files=files, gated=bool(info.gated), endpoint=base)


def _no_safetensors_sentence(repo_id: str, siblings: list[RepoSibling]) -> str:
    refused = sorted(s.rfilename for s in siblings if s.rfilename.endswith(REFUSED_SUFFIXES))
    offered = f" (it offers only {', '.join(refused[:3])})" if refused else ""
    return (
        f"{repo_id} has no .safetensors weights{offered}. PaliDesk downloads only "
        "safetensors, because pickle-based weights such as .bin files can run code when "
        "loaded. Choose a repository that provides .safetensors files."
    )
