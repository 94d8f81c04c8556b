"""The dashboard's static files ship in the built wheel (pyproject package-data): a pip-installed gateway serves
/ui with no build step and nothing fetched at run time."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STATIC = ROOT / "dragoman" / "ui" / "static"


def test_every_static_file_is_in_the_wheel(tmp_path: Path) -> None:
    # Built from a copy (setuptools writes build/ beside the sources); --no-build-isolation: setuptools and wheel
    # are installed (test extras), and the test must not reach a package index.
    source = tmp_path / "src"
    shutil.copytree(ROOT / "dragoman", source / "dragoman", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path),
                    str(source)], check=True, capture_output=True, cwd=tmp_path)
    wheel = next(tmp_path.glob("dragoman-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {"dragoman/ui/static/" + p.relative_to(STATIC).as_posix() for p in STATIC.rglob("*") if p.is_file()}
    assert expected and expected <= names, sorted(expected - names)
    assert {"dragoman/ui/static/vendor/uPlot.esm.js", "dragoman/ui/static/vendor/uPlot.LICENSE"} <= names
