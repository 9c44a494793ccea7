"""The ASGI application: PaliDesk's routes on FastAPI, behind the request guard and,
only when asked for, CORS. Needs the ``palidesk[server]`` extra."""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from app.labeltools.ls_images import LabelStudioAccess
from app.server import chat_api, label_studio_api, native_api, xanylabeling_api
from app.server.request_errors import RequestRefused
from app.server.request_guard import DEFAULT_MAX_BODY, ASGIApp, RequestGuard
from app.server.serve_state import ServeState


def build_app(state: ServeState, *, bind_host: str, api_key: str | None = None,
              cors_origins: Sequence[str] = (), max_body: int = DEFAULT_MAX_BODY,
              label_studio: LabelStudioAccess | None = None) -> ASGIApp:
    # No /docs or /openapi.json: docs/server.md documents the API, and a smaller surface
    # has less to guard.
    app = FastAPI(title="PaliDesk", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.serve = state
    app.state.label_studio = label_studio or LabelStudioAccess()  # no Label Studio given
    app.state.max_body = max_body  # the most one image read from Label Studio may hold
    app.include_router(native_api.router)
    app.include_router(chat_api.router)
    app.include_router(label_studio_api.router)
    app.include_router(xanylabeling_api.router)

    @app.exception_handler(RequestRefused)
    async def refused(_: Request, exc: RequestRefused) -> JSONResponse:
        return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, exc: HTTPException) -> JSONResponse:
        words = {404: "There is no such endpoint; see docs/server.md.",
                 405: "This endpoint does not take this method."}
        refusal = RequestRefused(exc.status_code, words.get(exc.status_code, str(exc.detail)))
        return JSONResponse(refusal.body(), status_code=exc.status_code)

    served: ASGIApp = app
    if cors_origins:
        from starlette.middleware.cors import CORSMiddleware

        served = CORSMiddleware(served, allow_origins=list(cors_origins),
                                allow_methods=["GET", "POST", "OPTIONS"],
                                allow_headers=["authorization", "content-type", "token"])
    return RequestGuard(served, bind_host=bind_host, api_key=api_key, max_body=max_body,
                        cors_origins=cors_origins)
