#!/usr/bin/env python3
"""Open the PaliDesk window with an image and a finished result, and save a screenshot.

Run under a real X server so the picture is what a person sees:

    xvfb-run -a -s "-screen 0 1400x900x24" .venv/bin/python tools/screenshot.py

It converts the tiny test model into a temporary folder (no real weights are needed to
show the window), drops the test images, runs a detection, and writes
docs/screenshots/main-window.png. Settings and history go to a temporary folder too.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots" /
                        "main-window.png")
    parser.add_argument("--size", default="1280x800", help="window size, WIDTHxHEIGHT")
    parser.add_argument("--no-model", action="store_true", help="show the first-run panel")
    parser.add_argument("--dialog", choices=("settings", "models", "history", "speed", "server"),
                        help="also save a screenshot of this dialog (beside --out)")
    parser.add_argument("--scene", choices=("detect", "results", "skipped", "cancelled",
                                            "loading", "reopen", "twins"),
                        default="detect",
                        help="detect: one detection; results: four tasks on one image "
                             "(the results list); skipped: Run all over images whose "
                             "results are stored; cancelled: Run all cancelled midway; "
                             "loading: the saved model loading at start; reopen: an older "
                             "caption reopened from History; twins: a byte-identical copy")
    parser.add_argument("--quant", default="auto", help="the settings' quantization")
    args = parser.parse_args()

    from PySide6.QtCore import QEventLoop, QTimer
    from PySide6.QtWidgets import QApplication

    from app.convert.converter import convert_checkpoint
    from app.history import HistoryStore
    from app.settings import Settings, SettingsStore
    from app.ui.main_window import MainWindow

    tmp = Path(tempfile.mkdtemp(prefix="palidesk-shot-"))
    images = ROOT / "tests" / "fixtures" / "images"
    app = QApplication(sys.argv[:1])
    app.setApplicationName("PaliDesk")
    settings = Settings()
    if not args.no_model:
        model = tmp / "pg2-tiny-224"
        convert_checkpoint(ROOT / "tests" / "fixtures" / "tiny" / "pg2-tiny-224", model, "f16")
        settings.model_folder = str(model)
    settings.last_task = "detect"
    settings.detect_classes = "cat"
    settings.max_new_tokens = 40
    settings.quantization = args.quant
    if args.scene in ("reopen", "twins"):
        settings.last_task = "caption"
    store = SettingsStore(tmp / "settings.json")
    store.save(settings)
    window = MainWindow(store, HistoryStore(tmp / "history.sqlite3"), tmp / "cache")
    width, height = (int(v) for v in args.size.split("x"))
    window.resize(width, height)
    window.show()

    def wait(condition, timeout_s: float = 60.0) -> None:
        loop_ms = 50
        for _ in range(int(timeout_s * 1000 / loop_ms)):
            if condition():
                return
            loop = QEventLoop()
            QTimer.singleShot(loop_ms, loop.quit)
            loop.exec()
        raise TimeoutError("the window did not get there in time")

    shown = sorted(images.glob("*.png"))
    if args.scene == "twins":  # a byte copy of the first image, under another name
        import shutil

        folder = tmp / "photos"
        folder.mkdir()
        shown = [Path(shutil.copy(p, folder / p.name)) for p in shown[:3]]
        shown.append(Path(shutil.copy(shown[0], folder / f"copy_of_{shown[0].name}")))
    window.queue.add_paths(shown)
    if args.scene == "loading":  # the first moment of a start: the saved model loads
        app.processEvents()  # painted, before the worker's "loaded" can arrive
        args.out.parent.mkdir(parents=True, exist_ok=True)
        window.grab().save(str(args.out))
        print(f"saved {args.out}")
        wait(lambda: not window.loading)
        window.close()
        return 0
    wait(lambda: all(i.status != "loading" for i in window.queue.items()))
    if args.no_model:
        pass  # the first-run panel
    elif args.scene == "twins":
        wait(lambda: window.model is not None)
        window.run_all()
        wait(lambda: not window.session.busy, 300)
        window.queue.set_current(window.queue.items()[-1].key)
    elif args.scene == "reopen":
        wait(lambda: window.model is not None)
        noise = next(i for i in window.queue.items() if i.name.startswith("noise"))
        window.queue.set_current(noise.key)
        import dataclasses

        for limit in (40, 6):
            window.apply_settings(dataclasses.replace(window.settings, max_new_tokens=limit))
            window.run_current()
            wait(lambda: not window.session.busy)
        older = window.history.recent()[-1]
        window.open_record(older)
    if not args.no_model and args.scene not in ("twins", "reopen"):
        wait(lambda: window.model is not None)
        noise = next(i for i in window.queue.items() if i.name.startswith("noise"))
        window.queue.set_current(noise.key)
        if args.scene == "results":
            for preset in ("cap", "ocr", "ask", "detect"):
                window.task_panel.set_preset(preset)
                if preset == "ask":
                    window.task_panel.input_edit.setText("what is in the picture?")
                window.run_current()
                wait(lambda: not window.session.busy)
        elif args.scene in ("skipped", "cancelled"):
            window.settings.max_new_tokens = 60 if args.scene == "cancelled" else 40
            if args.scene == "skipped":  # results stored by an earlier pass
                window.run_all()
                wait(lambda: not window.session.busy, 300)
                window.queue.set_current(window.queue.items()[0].key)
            window.run_all()
            if args.scene == "cancelled":
                wait(lambda: (window.session.batch is not None
                              and window.session.batch.ended >= 2))
                window.cancel()
            wait(lambda: not window.session.busy, 300)
        else:
            window.run_current()
            wait(lambda: not window.session.busy)
    loop = QEventLoop()
    QTimer.singleShot(500, loop.quit)  # let the last paint land
    loop.exec()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    window.grab().save(str(args.out))
    print(f"saved {args.out}")
    if args.dialog:
        from app.models.installed import InstalledModels
        from app.ui.models_dialog import ModelsDialog
        from app.ui.settings_dialog import SettingsDialog

        if args.dialog == "settings":
            dialog = SettingsDialog(window.settings, window)
        elif args.dialog == "history":
            from app.ui.history_dialog import HistoryDialog

            dialog = HistoryDialog(window.history, window)
        elif args.dialog == "server":  # Tools › Local Server…, started on a free port
            import socket

            with socket.socket() as probe:  # a free port, so a running server is no obstacle
                probe.bind(("127.0.0.1", 0))
                free_port = probe.getsockname()[1]
            dialog = window.tools_menu.show_local_server()
            dialog.port.setValue(free_port)
            dialog.toggle()
            app.processEvents()
        elif args.dialog == "speed":
            from app.ui.speed_test_dialog import SpeedTestDialog

            dialog = SpeedTestDialog(Path(settings.model_folder), window)
        else:
            models = InstalledModels(tmp / "models")
            if settings.model_folder:
                import shutil

                shutil.copytree(settings.model_folder, models.folder_for("pg2-tiny-224"))
            dialog = ModelsDialog(models, parent=window)
            dialog.catalog.selectRow(1)
        dialog.show()
        loop = QEventLoop()
        QTimer.singleShot(500, loop.quit)
        loop.exec()
        path = args.out.with_name(f"{args.dialog}-dialog.png")
        dialog.grab().save(str(path))
        print(f"saved {path}")
        if args.dialog == "server":  # the status bar says it serves; then stop serving
            window.grab().save(str(args.out.with_name("server-window.png")))
            dialog.toggle()
            wait(lambda: not window.tools_menu.local_server.running)
        dialog.done(0)
    window.close()
    window.history.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
