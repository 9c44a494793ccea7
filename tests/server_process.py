"""A real `palidesk serve` process on a free port, for the server's tests (no mocked app
object: requests go through uvicorn, the guard and the worker thread as a client's do)."""

from __future__ import annotations

import base64
import http.client
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

IMAGES = Path(__file__).parent / "fixtures" / "images"


def image_b64(name: str = "shapes_320x240.png") -> str:
    return base64.b64encode((IMAGES / name).read_bytes()).decode()


def data_uri(name: str = "shapes_320x240.png") -> str:
    return f"data:image/png;base64,{image_b64(name)}"


def user_env(home: Path) -> dict[str, str]:
    """An environment whose settings, models folder and history live under ``home``."""
    env = dict(os.environ)
    env.update(XDG_DATA_HOME=str(home / "data"), XDG_CONFIG_HOME=str(home / "config"),
               XDG_CACHE_HOME=str(home / "cache"), PYTHONUNBUFFERED="1")
    return env


class ServerProcess:
    def __init__(self, model: Path, home: Path, *extra: str) -> None:
        self.home = home
        self.env = user_env(home)
        self.log = home / f"serve-{time.monotonic_ns()}.log"
        self._log_file = self.log.open("w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "app.cli.main", "serve", "--model", str(model),
             "--port", "0", "--threads", "1", *extra],
            stdout=subprocess.PIPE, stderr=self._log_file, text=True, env=self.env,
            cwd=Path(__file__).parent.parent)
        self.banner: list[str] = []
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.banner.append(line)
            if line.startswith("Press Ctrl+C"):
                break
        found = re.search(r"http://([\d.]+):(\d+)", "".join(self.banner))
        if found is None:
            self.process.kill()
            raise AssertionError(f"no address printed: {self.banner} {self.log.read_text()}")
        self.host, self.port = found[1], int(found[2])

    @property
    def base(self) -> str:
        return f"http://{self.host}:{self.port}"

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status, _, _ = self.request("GET", "/health")
            if status == 200:
                return
            assert self.process.poll() is None, self.log.read_text()
            time.sleep(0.05)
        raise AssertionError("the server did not become ready")

    def connection(self, timeout: float = 60) -> http.client.HTTPConnection:
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout)

    def request(self, method: str, path: str, body: object = None,
                headers: dict[str, str] | None = None,
                raw: bytes | None = None,
                timeout: float = 60) -> tuple[int, dict[str, str], object]:
        """(status, headers, JSON body or text)."""
        connection = self.connection(timeout)
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        sent = {"content-type": "application/json"} if data is not None else {}
        sent.update(headers or {})
        try:
            connection.request(method, path, body=data, headers=sent)
            response = connection.getresponse()
            text = response.read().decode()
            answer_headers = {k.lower(): v for k, v in response.getheaders()}
        finally:
            connection.close()
        try:
            parsed: object = json.loads(text)
        except ValueError:
            parsed = text
        return response.status, answer_headers, parsed

    def stop(self, timeout: float = 60) -> int:
        """Ctrl+C, as a user stops it; returns the exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        assert self.process.stdout is not None
        self.process.stdout.close()
        self._log_file.close()
        return self.process.returncode
