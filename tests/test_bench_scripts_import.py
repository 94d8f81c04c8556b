"""Every script in bench/ imports against the code as it is now. The benches are not run by the suite (they time
things; tests never do), so a helper renamed or removed in dragoman/ would otherwise only show when someone next
measures: bench_governance.py and bench_json_depth.py were found broken that way. Importing runs none of them:
each script's work is behind `if __name__ == "__main__"` (gateways.py and validate.py are libraries)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"
SCRIPTS = sorted(BENCH.glob("*.py"))


def test_the_bench_folder_has_scripts() -> None:
    assert len(SCRIPTS) > 10


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda path: path.name)
def test_bench_script_imports(script: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(BENCH))  # the scripts import each other as they do when run from bench/
    text = script.read_text()
    assert 'if __name__ == "__main__"' in text or script.name in ("gateways.py", "validate.py"), script.name
    name = f"bench_under_test_{script.stem}"
    spec = importlib.util.spec_from_file_location(name, script)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the class is made
    try:
        spec.loader.exec_module(module)
    finally:
        sys.modules.pop(name, None)


def test_the_bench_dragoman_environment_is_one_the_gateway_accepts(monkeypatch: pytest.MonkeyPatch) -> None:
    """The bench starts Dragoman with its own environment; a gateway check made stricter since (the signing key's
    length) stopped every bench gateway from starting, which only a bench run showed."""
    from dragoman.signing_key import check_configured

    monkeypatch.syspath_prepend(str(BENCH))
    import gateways

    for name, gateway in gateways.GATEWAYS.items():
        if isinstance(gateway, gateways.Dragoman):
            check_configured(gateway.env())  # raises on a key the gateway would refuse at start
