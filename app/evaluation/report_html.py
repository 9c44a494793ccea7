"""report.html: the eval report as one self-contained page (charts and images inline)."""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw

from app.evaluation.score import HIGHER_IS_BETTER

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; max-width: 1200px; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { border: 1px solid #ccc; padding: 4px 10px; text-align: right; }
th:first-child, td:first-child { text-align: left; }
.charts img { margin: 0 1em 1em 0; border: 1px solid #eee; }
.pair { display: flex; gap: 1em; flex-wrap: wrap; margin-bottom: 2em; }
.pair figure { margin: 0; max-width: 290px; }
figcaption { font-size: 90%; white-space: pre-wrap; word-break: break-word; }
.note { color: #a40; }
"""
_SPEED_ROWS = (("load_s", "load (s)", "{:.2f}"), ("first_token_s", "first token, new image (s)",
               "{:.2f}"), ("first_token_cached_s", "first token, cached image (s)", "{:.2f}"),
               ("decode_tokens_per_s", "decode (tokens/s)", "{:.1f}"),
               ("peak_rss_bytes", "peak RAM (GB)", "gb"), ("peak_vram_bytes", "peak VRAM (GB)",
                                                            "gb"),
               ("gpu_layers", "GPU layers", "{}"))
_COLOURS = ("#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6")


def write_html(report: dict[str, Any], out_dir: Path) -> Path:
    """Write ``out_dir/report.html`` for a report from ``run_eval``; return its path."""
    quants = list(report["quants"])
    parts = [
        "<!DOCTYPE html>", "<html lang=\"en\"><head><meta charset=\"utf-8\">",
        f"<title>PaliDesk evaluation: {_e(report['model'])}</title>",
        f"<style>{_STYLE}</style></head><body>",
        f"<h1>{_e(report['model'])}: {_e(report['task'])}</h1>",
        f"<p>{report['images']} images · prompt <code>{_e(report.get('prompt') or '')}</code>"
        f" · reference {_e(report['reference'])} · {_e(report['created'])} · "
        f"{_e(report['machine'])}</p>",
    ]
    if report.get("interrupted"):
        parts.append("<p class=\"note\">Interrupted: the figures cover the images finished "
                     "before it stopped.</p>")
    parts += _metrics_section(report, quants)
    parts += _agreement_section(report, quants)
    parts += _speed_section(report, quants)
    parts += _disagreement_section(report)
    parts.append("</body></html>")
    target = out_dir / "report.html"
    target.write_text("\n".join(parts), encoding="utf-8")
    return target


def _e(value: object) -> str:
    return html.escape(str(value))


def _table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _metrics_section(report: dict[str, Any], quants: list[str]) -> list[str]:
    names: list[str] = []
    for q in quants:
        for name in (report["quants"][q].get("metrics") or {}):
            if name not in names:
                names.append(name)
    if not names:
        return ["<h2>Quality</h2>", "<p>No labelled truth was given: only agreement between "
                "quantizations is shown.</p>"]
    rows = []
    for name in names:
        hint = " ↑" if HIGHER_IS_BETTER.get(name, True) else " ↓"
        rows.append([_e(name + hint)] + [_fmt(report["quants"][q]["metrics"].get(name))
                                         for q in quants])
    charts = [_bar_chart(name, {q: report["quants"][q]["metrics"].get(name) for q in quants})
              for name in names]
    return ["<h2>Quality against the truth</h2>", _table(["metric", *quants], rows),
            "<div class=\"charts\">", *charts, "</div>"]


def _agreement_section(report: dict[str, Any], quants: list[str]) -> list[str]:
    rows = []
    for q in quants:
        a = report["quants"][q].get("agreement")
        if not a:
            continue
        rows.append([_e(q), str(a["images"]), _pct(a["token_share"]), _pct(a["box_share"])])
    if not rows:
        return []
    shares = {q: (report["quants"][q]["agreement"] or {}).get("share") for q in quants}
    return [f"<h2>Agreement with {_e(report['reference'])}</h2>",
            "<p>Same tokens: the very same answer. Same boxes: the same objects, each at "
            "IoU ≥ 0.9 with the same label.</p>",
            _table(["quantization", "images", "same tokens", "same boxes"], rows),
            "<div class=\"charts\">", _bar_chart("agreement (share)", shares), "</div>"]


def _speed_section(report: dict[str, Any], quants: list[str]) -> list[str]:
    rows = []
    for key, label, form in _SPEED_ROWS:
        row = [_e(label)]
        for q in quants:
            value = (report["quants"][q].get("speed") or {}).get(key)
            if value is None:
                row.append("–")
            elif form == "gb":
                row.append(f"{value / 1e9:.2f}")
            else:
                row.append(form.format(value))
        rows.append(row)
    charts = [_bar_chart(label, {q: (report["quants"][q].get("speed") or {}).get(key)
                                 for q in quants})
              for key, label, _ in _SPEED_ROWS[:4]]
    return ["<h2>Speed on this machine</h2>", _table(["", *quants], rows),
            "<div class=\"charts\">", *charts, "</div>"]


def _disagreement_section(report: dict[str, Any]) -> list[str]:
    items = report.get("disagreements") or []
    if not items:
        return ["<h2>Disagreements</h2>", "<p>Every quantization gave the reference's answer "
                "on every image both finished.</p>"]
    parts = ["<h2>Where they disagree most</h2>"]
    for item in items:
        parts.append(f"<h3>{_e(Path(item['image']).name)}</h3><div class=\"pair\">")
        for quant, answer in item["answers"].items():
            picture = _picture(item["image"], answer.get("objects") or [])
            text = answer.get("error") or answer.get("text") or "(no answer)"
            parts.append(f"<figure>{picture}<figcaption><b>{_e(quant)}</b>: "
                         f"{_e(text)}</figcaption></figure>")
        parts.append("</div>")
    return parts


def _picture(path: str, objects: list[dict[str, Any]], size: int = 280) -> str:
    """The image with its boxes drawn, as an inline JPEG (empty if it cannot be read)."""
    try:
        with Image.open(path) as im:
            image = im.convert("RGB")
    except OSError:
        return ""
    scale = size / max(image.width, image.height)  # fits a size x size square
    image = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))))
    draw = ImageDraw.Draw(image)
    labels: dict[str, str] = {}
    for obj in objects:
        try:
            x0, y0, x1, y1 = (float(v) * scale for v in obj["box"])
        except (KeyError, TypeError, ValueError):
            continue
        label = str(obj.get("label", ""))
        colour = labels.setdefault(label, _COLOURS[len(labels) % len(_COLOURS)])
        draw.rectangle((x0, y0, x1, y1), outline=colour, width=2)
        draw.text((x0 + 3, y0 + 2), label, fill=colour)
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=85)
    data = base64.b64encode(buffer.getvalue()).decode()
    return f"<img alt=\"{_e(Path(path).name)}\" src=\"data:image/jpeg;base64,{data}\">"


def _bar_chart(title: str, values: dict[str, float | None]) -> str:
    """A small bar chart: a matplotlib PNG inline, or an inline SVG where matplotlib is not
    installed (the packaged app leaves it out to stay small)."""
    shown = {k: v for k, v in values.items() if v is not None}
    if not shown:
        return ""
    try:
        import matplotlib
    except ImportError:
        return _svg_chart(title, shown)
    matplotlib.use("Agg")  # no display: render to memory only
    from matplotlib import pyplot

    figure, axes = pyplot.subplots(figsize=(3.6, 2.4), dpi=100)
    try:
        bars = axes.bar(list(shown), list(shown.values()), color="#4363d8")
        axes.bar_label(bars, fmt="%.3g", fontsize=8)
        axes.set_title(title, fontsize=10)
        axes.tick_params(labelsize=8)
        axes.margins(y=0.2)
        if min(shown.values()) >= 0:  # no negative axis under counts and shares
            axes.set_ylim(bottom=0, top=max(shown.values()) * 1.2 or 1.0)
        figure.tight_layout()
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png")
    finally:
        pyplot.close(figure)
    data = base64.b64encode(buffer.getvalue()).decode()
    return f"<img alt=\"{_e(title)}\" src=\"data:image/png;base64,{data}\">"


def _svg_chart(title: str, shown: dict[str, float], width: int = 360,
               height: int = 240) -> str:
    top = max(max(shown.values()), 1e-9)
    slot = (width - 40) / len(shown)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'role="img" aria-label="{_e(title)}">',
             f'<text x="{width / 2}" y="16" text-anchor="middle" font-size="13">{_e(title)}'
             "</text>"]
    for i, (name, value) in enumerate(shown.items()):
        bar = (height - 70) * max(value, 0) / top
        x = 20 + i * slot + slot * 0.15
        y = height - 30 - bar
        parts += [f'<rect x="{x:.1f}" y="{y:.1f}" width="{slot * 0.7:.1f}" height="{bar:.1f}" '
                  'fill="#4363d8"/>',
                  f'<text x="{x + slot * 0.35:.1f}" y="{y - 4:.1f}" text-anchor="middle" '
                  f'font-size="11">{value:.3g}</text>',
                  f'<text x="{x + slot * 0.35:.1f}" y="{height - 12}" text-anchor="middle" '
                  f'font-size="11">{_e(name)}</text>']
    return "".join(parts) + "</svg>"


def _fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:.4g}"


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:.0f} %"
