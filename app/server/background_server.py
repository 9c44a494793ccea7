"""The server in a background thread, for the window (Tools › Local Server…): the same
application as `palidesk serve`, started and stopped without taking the main thread."""

from __future__ import annotations

import socket
import threading

from app.server.listener import listen
from app.server.serve_state import ServeState


class BackgroundServer:
    """Serves ``state`` on ``host:port`` until ``stop``; ``address`` is the bound one."""

    def __init__(self, state: ServeState, host: str = "127.0.0.1", port: int = 0) -> None:
        import uvicorn

        from app.server.web_app import build_app

        self.state = state
        self.listener: socket.socket = listen(host, port)  # ServeError in words if taken
        bound = self.listener.getsockname()
        self.address = f"{bound[0]}:{bound[1]}"
        app = build_app(state, bind_host=host)
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
        self.thread = threading.Thread(target=self._run, name="palidesk-local-server",
                                       daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.server.run(sockets=[self.listener])
        finally:
            self.listener.close()

    def stop(self, timeout: float = 60) -> None:
        """Take no new request, let the ones in flight finish, then end the thread."""
        self.server.should_exit = True
        self.thread.join(timeout)
