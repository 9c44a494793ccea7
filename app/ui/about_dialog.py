"""Help › About: the version, which llama.cpp build this is, and where settings live."""

from __future__ import annotations

import html
import platform

from PySide6 import __version__ as pyside_version
from PySide6.QtCore import qVersion
from PySide6.QtWidgets import QMessageBox, QWidget

from app import __version__
from app.build_info import read_build_info
from app.settings import default_settings_path


def about_text() -> str:
    """The About box's text (HTML), Qt-independent apart from Qt's version numbers."""
    build = read_build_info()
    gpu = "GPU offload available" if _offload() else "CPU only"
    return (
        f"<h3>PaliDesk {__version__}</h3>"
        "<p>Google's PaliGemma 2 on your own machine, through llama.cpp.</p>"
        f"<p><b>Build:</b> {build.variant} ({gpu})<br>"
        f"<b>CPU backend:</b> {html.escape(_cpu_backend())}<br>"
        f"<b>llama-cpp-python:</b> {build.llama_cpp_python or 'unknown'}<br>"
        f"<b>Qt:</b> {qVersion()} (PySide6 {pyside_version}) · Python "
        f"{platform.python_version()}<br>"
        f"<b>Settings:</b> {default_settings_path()}</p>"
        "<p>Run <code>palidesk --self-test</code> to check this installation.</p>"
    )


def show_about(parent: QWidget | None) -> None:
    QMessageBox.about(parent, "About PaliDesk", about_text())


def _offload() -> bool:
    from app.hardware import llama_offload_supported

    return llama_offload_supported()


def _cpu_backend() -> str:
    from app.hardware import llama_cpu_backend

    return llama_cpu_backend()
