"""A local HTTP server that answers like the Hugging Face hub, for one tiny repository.

It implements what huggingface_hub 2.4 calls to list and fetch files:
``GET /api/models/{repo}[/revision/{rev}]`` (``?blobs=true`` adds sizes and LFS info),
``GET /api/models/{repo}/tree/{rev}[/{path}]`` and ``HEAD``/``GET
/{repo}/resolve/{rev}/{path}`` with Range requests and the ETag, X-Repo-Commit,
X-Linked-Size and X-Linked-Etag headers ``file_download.get_hf_file_metadata`` reads.
Errors carry the hub's ``X-Error-Code`` header and a JSON ``{"error": ...}`` body.
A repository has commits and refs (``publish`` adds a commit and moves a branch or tag to
it; older commits stay reachable by id), so a test can move it on between two tries.

Bounded: it listens on 127.0.0.1 only, answers each connection once (HTTP/1.0, so no
handler thread waits on a kept-alive socket), stops by itself after ``lifetime_s``, and
``stop()`` joins every thread it started.
"""

from __future__ import annotations

import bisect
import hashlib
import json
import re
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

COMMIT = "0123456789abcdef0123456789abcdef01234567"
TOKEN = "hf_fake_token_for_tests"
LFS_SUFFIXES = (".safetensors", ".bin")
MODES = ("normal", "token", "gated", "missing", "corrupt", "interrupt")


@dataclass(frozen=True)
class Request:
    """One request the server answered, as the tests inspect it."""

    method: str
    path: str
    range: str | None
    authorization: str | None
    status: int
    body_bytes: int


def git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class FakeHub:
    """Serves ``files`` as repository ``repo_id`` in one of MODES.

    - normal: everything public.
    - token: 401 without ``Authorization: Bearer TOKEN`` (a private repository).
    - gated: listing public; files 401 without a token, 403 with one (licence not accepted).
    - missing: ``missing_path`` is listed but 404 (EntryNotFound) when fetched.
    - corrupt: ``corrupt_path`` is served with one byte changed (its sha256 no longer fits).
    - interrupt: the first GET of ``interrupt_path`` ends after ``interrupt_after`` bytes.

    ``rate`` (bytes/s) throttles every file body, in pieces of 1/20 s; ``stall_after``
    makes the first GET of ``interrupt_path`` go quiet after that many bytes; with
    ``cdn_ttl_s`` large files come from an address that expires (then 403); ``silent``
    leaves the first GET of ``interrupt_path`` unanswered.
    """

    def __init__(
        self,
        files: dict[str, bytes],
        repo_id: str = "google/pg2-tiny-224",
        *,
        mode: str = "normal",
        missing_path: str = "tokenizer.json",
        corrupt_path: str = "model.safetensors",
        interrupt_path: str = "model.safetensors",
        interrupt_after: int = 300_000,
        ranges: bool = True,
        xet: bool = False,
        rate: float | None = None,
        stall_after: int | None = None,
        cdn_ttl_s: float | None = None,
        silent: bool = False,
        lifetime_s: float = 60.0,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}")
        self.commits: dict[str, dict[str, bytes]] = {COMMIT: files}
        self.refs: dict[str, str] = {"main": COMMIT}
        self.repo_id = repo_id
        self.mode = mode
        self.missing_path = missing_path
        self.corrupt_path = corrupt_path
        self.interrupt_path = interrupt_path
        self.interrupt_after = interrupt_after
        self.ranges = ranges  # False: ignore Range headers, as some proxies and CDNs do
        # True: large files say they are stored in Xet (as on the real hub today), which
        # invites hf_xet's transfer; the token route it would call next is not served.
        self.xet = xet
        # Bytes per second for each file body (a slow home link), None: as fast as it goes.
        self.rate = rate
        # The first GET of ``interrupt_path`` goes quiet after this many bytes (a link that
        # hangs) until the hub stops.
        self.stall_after = stall_after
        # Set: large files are served from a "CDN" address (``/cdn/<issued>/...``, the
        # resolve URL redirects there) that expires this many seconds after it was issued,
        # as the hub's signed CDN addresses do.
        self.cdn_ttl_s = cdn_ttl_s
        # True: the first GET of ``interrupt_path`` gets no answer at all (not even the
        # headers) until the hub stops: a server that accepted and went quiet.
        self.silent = silent
        self.lifetime_s = lifetime_s
        self.requests: list[Request] = []  # in the order they arrived
        self._arrived = 0
        self._places: list[int] = []  # each recorded request's place, sorted
        self._lock = threading.Lock()
        # Answers being sent: a request is recorded once its body is out, which can be
        # after the client has read it all and moved on, so gets_of waits for them.
        self._sending = 0
        self._all_sent = threading.Condition(self._lock)
        self._gets: dict[str, int] = {}
        self._stop = threading.Event()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.hub = self
        self._thread = threading.Thread(target=self._serve, name="fake-hub", daemon=True)

    @property
    def files(self) -> dict[str, bytes]:
        """The files at the head of main."""
        return self.commits[self.refs["main"]]

    def publish(self, files: dict[str, bytes], commit: str, ref: str = "main") -> None:
        """A new commit: ``ref`` moves to it; older commits stay reachable by their id."""
        with self._lock:
            self.commits[commit] = files
            self.refs[ref] = commit

    def resolve_revision(self, revision: str) -> str | None:
        """The commit ``revision`` (a branch, tag or commit id) names, or None."""
        with self._lock:
            return revision if revision in self.commits else self.refs.get(revision)

    @classmethod
    def from_folder(cls, folder: Path, extra: dict[str, bytes] | None = None,
                    **kwargs: object) -> FakeHub:
        files = {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}
        return cls({**files, **(extra or {})}, **kwargs)  # type: ignore[arg-type]

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakeHub:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self._server.server_close()  # joins the per-request threads (block_on_close)

    def __enter__(self) -> FakeHub:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _serve(self) -> None:
        deadline = time.monotonic() + self.lifetime_s
        while not self._stop.is_set() and time.monotonic() < deadline:
            self._server.handle_request()  # returns after ``timeout`` when idle

    def gets_of(self, path: str) -> list[Request]:
        """The GET requests for ``path``'s content, in order (once the answers being sent
        are recorded; a stalled one is waited for 2 s at most)."""
        with self._all_sent:
            self._all_sent.wait_for(lambda: self._sending == 0, timeout=2)
            requests = list(self.requests)
        return [r for r in requests if r.method == "GET" and r.path.endswith("/" + path)]

    def sending(self) -> int:
        """An answer starts going out; returns its place in the order of arrival."""
        with self._lock:
            self._sending += 1
            self._arrived += 1
            return self._arrived

    def record(self, request: Request, place: int) -> None:
        """``request`` was answered; ``place`` (from ``sending``) keeps ``requests`` in the
        order of arrival, though a long answer ends after a later short one."""
        with self._all_sent:
            index = bisect.bisect(self._places, place)
            self._places.insert(index, place)
            self.requests.insert(index, request)
            self._sending -= 1
            self._all_sent.notify_all()

    def count_get(self, path: str) -> int:
        with self._lock:
            self._gets[path] = self._gets.get(path, 0) + 1
            return self._gets[path]

    # What the hub says about the repository.

    def sibling(self, path: str, commit: str = COMMIT) -> dict:
        data = self.commits[commit][path]
        entry: dict = {"rfilename": path, "size": len(data)}
        if path.endswith(LFS_SUFFIXES):
            entry["blobId"] = git_blob_sha1(b"version https://git-lfs.github.com/spec/v1\n")
            entry["lfs"] = {"size": len(data), "sha256": hashlib.sha256(data).hexdigest(),
                            "pointerSize": 134}
        else:
            entry["blobId"] = git_blob_sha1(data)
        return entry

    def model_info(self, blobs: bool, commit: str = COMMIT) -> dict:
        siblings = [self.sibling(p, commit) if blobs else {"rfilename": p}
                    for p in sorted(self.commits[commit])]
        return {"id": self.repo_id, "modelId": self.repo_id, "sha": commit,
                "private": self.mode == "token",
                "gated": "manual" if self.mode == "gated" else False,
                "disabled": False, "tags": ["safetensors"], "siblings": siblings}

    def tree(self, prefix: str, commit: str = COMMIT) -> list[dict]:
        entries = []
        for path in sorted(self.commits[commit]):
            if prefix and not path.startswith(prefix.rstrip("/") + "/"):
                continue
            sib = self.sibling(path, commit)
            entry = {"type": "file", "oid": sib["blobId"], "size": sib["size"], "path": path}
            if "lfs" in sib:
                entry["lfs"] = {"oid": sib["lfs"]["sha256"], "size": sib["size"],
                                "pointerSize": 134}
            entries.append(entry)
        return entries


class _Server(ThreadingHTTPServer):
    daemon_threads = False  # so server_close() joins every request thread
    block_on_close = True
    timeout = 0.05  # handle_request() polls the stop flag this often
    hub: FakeHub


API_INFO = re.compile(r"^/api/models/([^/]+/[^/]+)(?:/revision/([^/]+))?$")
API_TREE = re.compile(r"^/api/models/([^/]+/[^/]+)/tree/([^/]+)/?(.*)$")
RESOLVE = re.compile(r"^/([^/]+/[^/]+)/resolve/([^/]+)/(.+)$")
CDN = re.compile(r"^/cdn/(\d+)/([0-9a-f]{40})/(.+)$")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"
    timeout = 10  # a stuck client cannot hold a request thread for longer
    server: _Server

    def log_message(self, format: str, *args: object) -> None:  # quiet test output
        pass

    @property
    def hub(self) -> FakeHub:
        return self.server.hub

    def do_HEAD(self) -> None:
        self._route(head=True)

    def do_GET(self) -> None:
        self._route(head=False)

    def _route(self, *, head: bool) -> None:
        parts = urlsplit(self.path)
        path = unquote(parts.path)
        try:
            if match := API_TREE.match(path):
                if commit := self._repo_ok(match.group(1), match.group(2), api=True):
                    self._json(200, self.hub.tree(match.group(3), commit), commit)
            elif match := API_INFO.match(path):
                if commit := self._repo_ok(match.group(1), match.group(2) or "main", api=True):
                    self._json(200, self.hub.model_info("blobs=true" in parts.query, commit),
                               commit)
            elif match := RESOLVE.match(path):
                if commit := self._repo_ok(match.group(1), match.group(2), api=False):
                    self._resolve(match.group(3), commit, head=head)
            elif (match := CDN.match(path)) and self.hub.cdn_ttl_s is not None:
                if time.time() * 1000 - int(match.group(1)) > self.hub.cdn_ttl_s * 1000:
                    self._error(403, None, "Request has expired")
                else:
                    self._resolve(match.group(3), match.group(2), head=head, via_cdn=True)
            else:
                self._error(404, None, "Not found")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client went away (a cancelled download): nothing left to answer

    def _repo_ok(self, repo_id: str, revision: str, *, api: bool) -> str | None:
        """The commit to answer from; answers the error and returns None when the request
        may not go on."""
        hub = self.hub
        auth = self.headers.get("Authorization")
        if repo_id != hub.repo_id:
            self._error(404 if auth else 401, "RepoNotFound", "Repository not found")
            return None
        if hub.mode == "token" and auth != f"Bearer {TOKEN}":
            message = "Invalid credentials in Authorization header" if auth else \
                "Invalid username or password."
            self._error(401, "RepoNotFound" if not auth else None, message)
            return None
        if hub.mode == "gated" and not api:
            if not auth:
                self._error(401, "GatedRepo", f"Access to model {repo_id} is restricted. You "
                            "must have access to it and be authenticated to access it. "
                            "Please log in.")
                return None
            self._error(403, "GatedRepo", f"Access to model {repo_id} is restricted and you "
                        "are not in the authorized list. Visit "
                        f"https://huggingface.co/{repo_id} to ask for access.")
            return None
        commit = hub.resolve_revision(revision)
        if commit is None:
            self._error(404, "RevisionNotFound", f"Invalid rev id: {revision}")
            return None
        return commit

    def _resolve(self, path: str, commit: str, *, head: bool, via_cdn: bool = False) -> None:
        hub = self.hub
        files = hub.commits[commit]
        if path not in files or (hub.mode == "missing" and path == hub.missing_path):
            self._error(404, "EntryNotFound", f"{path} does not exist on \"main\"")
            return
        data = files[path]
        sibling = hub.sibling(path, commit)
        headers = {"X-Repo-Commit": commit, "Accept-Ranges": "bytes",
                   "Content-Type": "application/octet-stream"}
        if "lfs" in sibling:
            headers["ETag"] = f'"{sibling["lfs"]["sha256"]}"'
            headers["X-Linked-Etag"] = f'"{sibling["lfs"]["sha256"]}"'
            headers["X-Linked-Size"] = str(len(data))
            if hub.xet:
                headers["X-Xet-Hash"] = sibling["lfs"]["sha256"]
                headers["X-Xet-Refresh-Route"] = (f"/api/models/{hub.repo_id}/xet-read-token/"
                                                  f"{commit}")
        else:
            headers["ETag"] = f'"{sibling["blobId"]}"'
        if hub.cdn_ttl_s is not None and "lfs" in sibling and not via_cdn:
            headers["Location"] = f"/cdn/{int(time.time() * 1000)}/{commit}/{path}"
            self._send(302, headers, 0, b"", head=head)
            return
        if head:
            self._send(200, headers, len(data), b"", head=True)
            return
        nth = hub.count_get(path)
        if hub.silent and path == hub.interrupt_path and nth == 1:
            while not hub._stop.wait(0.05):
                pass  # accepted, never answered
            return
        if hub.mode == "corrupt" and path == hub.corrupt_path:
            middle = len(data) // 2
            data = data[:middle] + bytes([data[middle] ^ 0xFF]) + data[middle + 1:]
        start, status = 0, 200
        if hub.ranges and (wanted := self.headers.get("Range")) is not None:
            match = re.fullmatch(r"bytes=(\d+)-(\d*)", wanted.strip())
            start = int(match.group(1)) if match else 0
            end = int(match.group(2)) if match and match.group(2) else len(data) - 1
            if start >= len(data):
                headers["Content-Range"] = f"bytes */{len(data)}"
                self._send(416, headers, 0, b"")
                return
            headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
            data, status = data[start:end + 1], 206
        length = len(data)
        if hub.mode == "interrupt" and path == hub.interrupt_path and nth == 1:
            data = data[:hub.interrupt_after]  # promised ``length`` bytes; drops the line
        stall = hub.stall_after if path == hub.interrupt_path and nth == 1 else None
        self._send(status, headers, length, data, stall_after=stall)

    def _json(self, status: int, payload: object, commit: str = COMMIT) -> None:
        body = json.dumps(payload).encode()
        self._send(status, {"Content-Type": "application/json",
                            "X-Repo-Commit": commit}, len(body), body)

    def _error(self, status: int, code: str | None, message: str) -> None:
        body = json.dumps({"error": message}).encode()
        headers = {"Content-Type": "application/json", "X-Error-Message": message}
        if code:
            headers["X-Error-Code"] = code
        self._send(status, headers, len(body), body, head=self.command == "HEAD")

    def _send(self, status: int, headers: dict[str, str], length: int, body: bytes,
              *, head: bool = False, stall_after: int | None = None) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(length))
        self.end_headers()
        sent = 0
        rate = self.hub.rate if status in (200, 206) and "/resolve/" in self.path else None
        step = max(1024, int(rate / 20)) if rate else 64 << 10
        started = time.monotonic()
        place = self.hub.sending()  # recorded (and counted off) in the ``finally`` below
        try:
            # Written in pieces so a client that stops reading is noticed early.
            for offset in range(0, 0 if head else len(body), step):
                if rate:  # the piece goes out when the link would have carried it
                    time.sleep(max(0.0, started + offset / rate - time.monotonic()))
                if stall_after is not None and offset >= stall_after:
                    while not self.hub._stop.wait(0.05):
                        pass  # the line hangs: nothing more until the hub stops
                    return
                piece = body[offset:offset + step]
                self.wfile.write(piece)
                self.wfile.flush()
                sent += len(piece)
        finally:
            self.hub.record(Request(self.command, urlsplit(self.path).path,
                                    self.headers.get("Range"),
                                    self.headers.get("Authorization"), status, sent),
                            place)
