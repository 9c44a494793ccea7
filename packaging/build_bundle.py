#!/usr/bin/env python3
"""Build PaliDesk's one-folder bundle (``dist/palidesk``; ``dist/PaliDesk.app`` on macOS).

Runs PyInstaller with ``packaging/palidesk.spec`` in the Python that runs this script, so
the bundle carries that environment's llama-cpp-python build. Before it, it writes the
build record ``build/palidesk-build.json`` (variant, CMake arguments, versions) that the
frozen app reads to tell the user which build it is; after it, it checks that the
llama.cpp libraries landed where ``llama_cpp`` loads them and prints the bundle's size.

    .venv/bin/python packaging/build_bundle.py                  # variant from the venv
    build/venv-cuda/bin/python packaging/build_bundle.py --variant cuda \\
        --cmake-args "-DGGML_CUDA=on"                           # what build_variant.sh does
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BUILD = ROOT / "build"
DIST = ROOT / "dist"
SPEC = ROOT / "packaging" / "palidesk.spec"
VENV_MARKER = "palidesk-llama-build.json"  # written by tools/bootstrap.py
LIB_NAMES = {"linux": ("libllama.so", "libmtmd.so"), "darwin": ("libllama.dylib", "libmtmd.dylib"),
             "win32": ("llama.dll", "mtmd.dll")}


def app_version() -> str:
    text = (ROOT / "app" / "__init__.py").read_text()
    match = re.search(r'__version__\s*=\s*"([^"]+)"', text)
    return match.group(1) if match else "0.0.0"


def llama_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("llama-cpp-python")
    except PackageNotFoundError:
        return "not installed"


def build_record(variant: str | None, cmake_args: str | None) -> dict[str, object]:
    """What goes into the bundle's palidesk-build.json."""
    sys.path.insert(0, str(ROOT))
    from app.build_info import variant_of

    marker: dict[str, object] = {}
    with contextlib.suppress(OSError, ValueError):  # no record: a venv not made by bootstrap
        marker = json.loads((Path(sys.prefix) / VENV_MARKER).read_text())
    args = cmake_args.split() if cmake_args is not None else list(marker.get("cmake_args") or [])
    named = variant or str(marker.get("variant") or "")
    return {
        "variant": variant_of(args, named),
        "cpu_flavour": str(marker.get("variant") or ""),  # bootstrap.py's CPU set
        "cmake_args": args,
        "llama_cpp_python": llama_version(),
        "palidesk": app_version(),
        "platform": f"{sys.platform}-{platform.machine().lower()}",
        "python": platform.python_version(),
        "built": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def folder_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def bundle_dir() -> Path:
    if sys.platform == "darwin":
        return DIST / "PaliDesk.app"
    return DIST / "palidesk"


def check_llama_libs(bundle: Path) -> list[Path]:
    """The llama.cpp libraries in the bundle; raises if the ctypes-loaded ones are missing."""
    libs = sorted(p for p in bundle.rglob("*") if p.parent.name == "lib"
                  and p.parent.parent.name == "llama_cpp" and p.is_file())
    names = {p.name for p in libs}
    wanted = LIB_NAMES.get(sys.platform, LIB_NAMES["linux"])
    missing = [name for name in wanted if name not in names]
    if missing:
        raise SystemExit(f"the bundle lacks llama_cpp/lib/{', '.join(missing)}")
    return libs


_MODULE = re.compile(r"^(?:lib)?ggml-(?!base\.)[\w.-]+\.(?:so|dll|dylib)$")


def check_backend_modules(libs: list[Path]) -> list[str]:
    """A run-time-loaded build's backend modules (``libggml-cpu-haswell.so``...): every one
    the installed llama-cpp-python has must be in the bundle; returns their names.

    libggml opens them itself, so nothing else would notice a missing one: the app would
    just run slower on CPUs whose variant is absent.
    """
    import importlib.util

    spec = importlib.util.find_spec("llama_cpp")
    if spec is None or not spec.submodule_search_locations:
        return []
    source = Path(next(iter(spec.submodule_search_locations))) / "lib"
    if not source.is_dir():
        return []
    wanted = {p.name for p in source.iterdir() if _MODULE.match(p.name)}
    missing = sorted(wanted - {p.name for p in libs})
    if missing:
        raise SystemExit(f"the bundle lacks llama.cpp backend modules: {', '.join(missing)}")
    return sorted(wanted)


def link_duplicate_libs(bundle: Path) -> int:
    """Linux: turn ``libllama.so`` into a symlink to its identical ``libllama.so.0``.

    Wheels store the library's symlinks as copies; the .deb and .tar.gz keep symlinks,
    so this halves the llama.cpp libraries' share of the bundle. Returns bytes saved.
    """
    saved = 0
    for lib_dir in bundle.glob("_internal/llama_cpp/lib"):
        for plain in sorted(lib_dir.glob("*.so")):
            soname = plain.with_name(plain.name + ".0")
            if (soname.is_file() and not plain.is_symlink()
                    and plain.read_bytes() == soname.read_bytes()):
                saved += plain.stat().st_size
                plain.unlink()
                plain.symlink_to(soname.name)
    return saved


def strip_python(bundle: Path) -> int:
    """Linux: strip debug symbols from the interpreter's own libraries; returns bytes saved.

    Only libpython and lib-dynload: they come straight from the Python build. Libraries
    from wheels are left alone, because stripping one that auditwheel patched (numpy's
    OpenBLAS) makes it unloadable ("ELF load command address/offset not page-aligned").
    """
    strip = shutil.which("strip")
    if strip is None:
        return 0
    targets = [*bundle.glob("_internal/libpython3*.so*"),
               *bundle.glob("_internal/python3*/lib-dynload/*.so")]
    targets = [p for p in targets if p.is_file() and not p.is_symlink()]
    before = sum(p.stat().st_size for p in targets)
    if targets:
        subprocess.run([strip, "--strip-unneeded", *map(str, targets)], check=True)
    return before - sum(p.stat().st_size for p in targets)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", choices=("cpu", "cuda", "metal", "vulkan"),
                        help="default: from the venv's llama build record, else unknown")
    parser.add_argument("--cmake-args", help="the CMAKE_ARGS the llama wheel was built with")
    parser.add_argument("--clean", action="store_true", help="rebuild from scratch")
    args = parser.parse_args()

    started = time.monotonic()
    BUILD.mkdir(exist_ok=True)
    record = build_record(args.variant, args.cmake_args)
    record_path = BUILD / "palidesk-build.json"
    record_path.write_text(json.dumps(record, indent=2) + "\n")
    print(f"building PaliDesk {record['palidesk']} ({record['variant']} build, "
          f"llama-cpp-python {record['llama_cpp_python']})", flush=True)
    if sys.platform in ("win32", "darwin"):
        subprocess.run([sys.executable, str(ROOT / "packaging" / "make_icon.py"),
                        "--platform-icons", str(BUILD / "icons")], check=True)
    env = dict(os.environ, PALIDESK_VERSION=str(record["palidesk"]),
               PALIDESK_BUILD_INFO=str(record_path))
    cmd = [sys.executable, "-m", "PyInstaller", "--noconfirm", "--log-level", "WARN",
           "--distpath", str(DIST), "--workpath", str(BUILD / "pyinstaller"), str(SPEC)]
    if args.clean:
        cmd.insert(3, "--clean")
    subprocess.run(cmd, check=True, env=env, cwd=ROOT)

    bundle = bundle_dir()
    if sys.platform.startswith("linux"):
        saved = link_duplicate_libs(bundle) + strip_python(bundle)
        print(f"deduplicated llama.cpp libraries, stripped libpython: {saved / 1e6:.1f} MB saved")
    libs = check_llama_libs(bundle)
    modules = check_backend_modules(libs)
    size = folder_size(bundle)
    print(f"llama.cpp libraries: {', '.join(p.name for p in libs if p.name not in modules)}")
    if modules:
        print(f"llama.cpp backend modules (all {len(modules)} bundled): {', '.join(modules)}")
    print(f"bundle: {bundle.relative_to(ROOT)}  {size / 1e6:.1f} MB  "
          f"({time.monotonic() - started:.0f} s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
