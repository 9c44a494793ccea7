"""An HTTP answer that refuses a request, with the sentence the client sees."""

from __future__ import annotations


class RequestRefused(Exception):
    """Refuse the request with ``status`` and ``message``; ``param`` names the field at
    fault (OpenAI's error shape has a ``param``), ``headers`` go with the answer."""

    def __init__(self, status: int, message: str, param: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.headers = headers or {}

    def body(self) -> dict[str, object]:
        kind = "invalid_request_error" if self.status < 500 else "server_error"
        return {"error": {"message": self.message, "type": kind, "param": self.param,
                          "code": self.status}}
