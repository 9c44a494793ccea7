"""``palidesk serve``: the model over HTTP for scripts and labelling tools (needs the
``palidesk[server]`` extra; everything heavy is imported only when the command runs)."""

from __future__ import annotations

import argparse
import os
import socket
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from app.cli import option_types
from app.server.listener import DEFAULT_PORT, ServeError, listen

if TYPE_CHECKING:
    from app.labeltools.ls_images import LabelStudioAccess
    from app.server.engine_host import EngineHost, LoadFinished, ModelPlan
    from app.server.serve_state import ServeState

DEFAULT_QUEUE = 32
_port = option_types.whole_number(0, 65535, " (0 = any free port)")
_queue = option_types.whole_number(1, 10_000)
_body_mb = option_types.whole_number(1, 1024)


def add_serve_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    serve = sub.add_parser(
        "serve", help="serve the model over HTTP (OpenAI-compatible chat, /v1/run)",
        description="Load a model once and answer HTTP requests on this machine: "
                    "OpenAI-compatible /v1/chat/completions, PaliDesk's /v1/run (the record "
                    "of `palidesk run --json`) and /health. Needs `pip install "
                    "'palidesk[server]'`. Stop with Ctrl+C: the request in flight finishes.")
    serve.add_argument("--model", metavar="NAME|DIR",
                       help="an installed model's name or a model folder (default: the "
                            "window's model from Settings)")
    serve.add_argument("--quant", help="text model type; default: chosen for this machine, "
                                       "as the window does")
    serve.add_argument("--host", default="127.0.0.1",
                       help="address to listen on (default 127.0.0.1: this machine only); "
                            "any other needs --api-key-file")
    serve.add_argument("--port", type=_port, default=DEFAULT_PORT,
                       help=f"port (default {DEFAULT_PORT}, which LM Studio, Ollama, "
                            "llama-server and Label Studio do not use)")
    serve.add_argument("--api-key-file", type=Path, metavar="FILE",
                       help="file holding the API key clients must send "
                            "(Authorization: Bearer KEY, or Token: KEY)")
    serve.add_argument("--queue", type=_queue, default=DEFAULT_QUEUE, metavar="N",
                       help=f"requests that may wait behind the running one (default "
                            f"{DEFAULT_QUEUE}); past that the answer is 503 with Retry-After")
    serve.add_argument("--cors-origin", action="append", default=[], metavar="ORIGIN",
                       help="allow browser pages of ORIGIN (e.g. http://localhost:3000) to "
                            "call the server; repeat for more (default: none)")
    serve.add_argument("--max-body-mb", type=_body_mb, default=32, metavar="MB",
                       help="largest request body accepted (default 32 MB; larger: 413)")
    studio = serve.add_argument_group(
        "Label Studio (its ML backend protocol: connect this server in a project's "
        "Settings › Model)")
    studio.add_argument("--label-studio-url", metavar="URL",
                        default=os.environ.get("LABEL_STUDIO_URL"),
                        help="the Label Studio server task images are fetched from, e.g. "
                             "http://localhost:8080 (default: $LABEL_STUDIO_URL); no other "
                             "host is ever fetched from")
    studio.add_argument("--label-studio-api-key-file", type=Path, metavar="FILE",
                        help="file holding Label Studio's API key (default: "
                             "$LABEL_STUDIO_API_KEY)")
    studio.add_argument("--label-studio-files", type=Path, metavar="DIR",
                        default=os.environ.get("LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT"),
                        help="the local-files storage folder whose images may be read "
                             "(default: $LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT)")
    serve.add_argument("--no-history", action="store_true",
                       help="do not store served results in the history")
    serve.add_argument("--threads", type=option_types.threads,
                       help="CPU threads (default: the CPUs this process may use)")
    serve.add_argument("--gpu-layers", type=option_types.gpu_layers,
                       help="-1 = all (GPU builds only); default: chosen for this machine")


def run_serve_command(args: argparse.Namespace) -> int:
    _require_extra()
    from app.server.request_guard import is_loopback

    api_key = _read_key(args.api_key_file) if args.api_key_file else None
    if not is_loopback(args.host) and api_key is None:
        raise ServeError(
            f"--host {args.host} lets other machines reach the server; give it a key with "
            "--api-key-file FILE (clients send 'Authorization: Bearer KEY'), or keep the "
            "default 127.0.0.1.")
    from app.server.engine_host import EngineHost, open_results, plan_model

    plan = plan_model(_model_argument(args.model), args.quant, args.gpu_layers, args.threads)
    listener = listen(args.host, args.port)
    try:
        return _serve(args, plan, listener, api_key, EngineHost(open_results(
            not args.no_history)))
    finally:
        listener.close()


def _serve(args: argparse.Namespace, plan: ModelPlan, listener: socket.socket,
           api_key: str | None, host: EngineHost) -> int:
    import uvicorn

    from app.server.engine_host import installed_mask_decoder
    from app.server.serve_state import ServeState
    from app.server.served_images import ServedImages, default_served_folder
    from app.server.web_app import build_app

    images = ServedImages(None if args.no_history else default_served_folder())
    state = ServeState.start(host, args.queue, images, installed_mask_decoder())
    max_body = args.max_body_mb * 1024 * 1024
    app = build_app(state, bind_host=args.host, api_key=api_key,
                    cors_origins=args.cors_origin, max_body=max_body,
                    label_studio=_label_studio(args))
    server = _make_server(uvicorn.Config(app, log_level="warning", lifespan="off",
                                         timeout_graceful_shutdown=None), state)
    failed: list[str] = []

    def loaded(event: LoadFinished) -> None:  # on the worker thread
        if event.model is None:
            failed.append(event.error)
            print(f"error: the model could not be loaded: {event.error}", file=sys.stderr)
            server.should_exit = True
            return
        model = event.model
        note = f" — {model.choice}" if model.choice else ""
        print(f"model loaded: {model.identity.name} ({model.identity.quant}){note}",
              file=sys.stderr, flush=True)

    _print_endpoints(listener, plan.folder.name)
    state.load(plan, loaded)
    try:
        server.run(sockets=[listener])
    except KeyboardInterrupt:
        pass  # uvicorn re-raises the Ctrl+C it handled once it has shut down
    finally:
        state.queue.close(wait=True)
        host.close()
    print("server stopped", file=sys.stderr)
    return 1 if failed else 0


def _make_server(config, state: ServeState):  # type: ignore[no-untyped-def]
    import uvicorn

    class Server(uvicorn.Server):
        """On Ctrl+C: waiting requests are answered 503 at once, the running one finishes."""

        def handle_exit(self, sig, frame) -> None:  # type: ignore[no-untyped-def]
            state.queue.close(wait=False)
            super().handle_exit(sig, frame)

    return Server(config)


def _label_studio(args: argparse.Namespace) -> LabelStudioAccess:
    from app.labeltools.ls_images import LabelStudioAccess

    key = (args.label_studio_api_key_file.read_text(encoding="utf-8").strip()
           if args.label_studio_api_key_file else os.environ.get("LABEL_STUDIO_API_KEY"))
    return LabelStudioAccess(args.label_studio_url or None, key or None,
                             Path(args.label_studio_files) if args.label_studio_files else None)


def _require_extra() -> None:
    try:
        import defusedxml  # noqa: F401
        import fastapi  # noqa: F401
        import multipart  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        raise ServeError(f"`palidesk serve` needs the server extra ({exc.name} is missing): "
                         "pip install 'palidesk[server]'") from None


def _model_argument(model: str | None) -> str:
    if model:
        return model
    from app.settings import SettingsStore, default_settings_path

    folder = SettingsStore(default_settings_path()).load().settings.model_folder
    if not folder:
        raise ServeError("Name the model to serve: palidesk serve --model NAME|DIR "
                         "(`palidesk models list` shows the installed ones).")
    return str(folder)


def _read_key(path: Path) -> str:
    try:
        key = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ServeError(f"The API key file {path} cannot be read ({exc}).") from None
    if len(key) < 16 or any(c.isspace() for c in key):
        raise ServeError(f"The API key in {path} must be one word of at least 16 characters.")
    return key


def _print_endpoints(listener: socket.socket, model_name: str) -> None:
    host, port = listener.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    base = f"http://{shown}:{port}"
    print(f"PaliDesk serving {model_name} on {base} (loading the model…)")
    for method, path, what in (
            ("GET ", "/health", "status: 503 while loading, then 200"),
            ("GET ", "/v1/models", "OpenAI-compatible model list"),
            ("POST", "/v1/chat/completions", "OpenAI-compatible chat with one image"),
            ("POST", "/v1/run", "one image -> `palidesk run --json`'s record"),
            ("POST", "/predict", "Label Studio ML backend (also /setup, /webhook)"),
            ("POST", "/xanylabeling/v1/predict",
             "X-AnyLabeling remote server: set its server URL to "
             f"{base}/xanylabeling")):
        print(f"  {method} {base}{path}  ({what})")
    print("Press Ctrl+C to stop.", flush=True)
