#!/usr/bin/env python3
"""Screenshots of Tools › Evaluate… after a real run, and of Settings with the figures it
measured (docs/screenshots/evaluate-dialog.png, settings-measured.png).

    xvfb-run -a -s "-screen 0 1400x900x24" .venv/bin/python tools/screenshot_evaluation.py

The tiny test model (F16, Q8_0, Q4_K_M) detects on the test images against
docs/examples/shapes-coco.json; the model has random weights, so its answers are noise.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SHOTS = ROOT / "docs" / "screenshots"


def main() -> int:
    from PySide6.QtCore import QEventLoop, QTimer
    from PySide6.QtWidgets import QApplication

    from app.convert.converter import convert_checkpoint
    from app.models.quantize import quantize_folder
    from app.settings import Settings
    from app.ui.evaluate_dialog import EvaluateDialog
    from app.ui.settings_dialog import SettingsDialog

    def wait(condition, timeout_s: float = 300.0) -> None:
        for _ in range(int(timeout_s * 20)):
            if condition():
                return
            loop = QEventLoop()
            QTimer.singleShot(50, loop.quit)
            loop.exec()
        raise TimeoutError("the dialog did not get there in time")

    def pause(seconds: float) -> None:  # let the last paint land
        loop = QEventLoop()
        QTimer.singleShot(int(seconds * 1000), loop.quit)
        loop.exec()

    app = QApplication(sys.argv[:1])
    app.setApplicationName("PaliDesk")
    tmp = Path(tempfile.mkdtemp(prefix="palidesk-eval-shot-"))
    model = tmp / "pg2-tiny-224"
    convert_checkpoint(ROOT / "tests" / "fixtures" / "tiny" / "pg2-tiny-224", model, "f16")
    for quant in ("Q8_0", "Q4_K_M"):
        quantize_folder(model, quant)

    dialog = EvaluateDialog(model, tmp / "reports")
    dialog.resize(980, 620)
    dialog.images_edit.setText(str(ROOT / "tests" / "fixtures" / "images"))
    dialog.truth_edit.setText(str(ROOT / "docs" / "examples" / "shapes-coco.json"))
    dialog.task_combo.setCurrentText("detect")
    dialog.show()
    dialog.start()
    wait(lambda: dialog.open_button.isEnabled())
    pause(0.5)
    SHOTS.mkdir(parents=True, exist_ok=True)
    dialog.grab().save(str(SHOTS / "evaluate-dialog.png"))
    print(f"saved {SHOTS / 'evaluate-dialog.png'} (report: {dialog.report_path})")
    dialog.close()

    settings = SettingsDialog(Settings(model_folder=str(model)))
    settings.resize(900, 560)
    settings.show()
    pause(0.5)
    settings.quant_combo.showPopup()  # the figures are in the list of quantizations
    pause(0.8)
    screen = app.primaryScreen()
    top_left = settings.frameGeometry().topLeft()
    picture = screen.grabWindow(0, top_left.x(), top_left.y(),
                                settings.frameGeometry().width(),
                                settings.frameGeometry().height())
    picture.save(str(SHOTS / "settings-measured.png"))
    print(f"saved {SHOTS / 'settings-measured.png'}")
    settings.quant_combo.hidePopup()
    settings.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
