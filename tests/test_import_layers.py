"""Every import in dragoman/ stays inside the layer picture of docs/ARCHITECTURE.md: a layer imports only the
layers below it. The table here and the one in that page change together, on purpose."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "dragoman"

FOUNDATION = "foundation"
FACE = "face"

# Top-level modules and packages -> their layer; a new one must be placed here before it can be imported.
LAYER_OF = {
    "protocols": FOUNDATION,
    "errors": FOUNDATION,
    "redaction": FOUNDATION,
    "identity": FOUNDATION,
    "tokens": FOUNDATION,
    "signing_key": FOUNDATION,
    "key_table": FOUNDATION,
    "translate": "translate",
    "upstreams": "upstreams",
    "policy": "policy",
    "config": "config",
    "routing": "routing",
    "observe": "observe",
    "loop": "loop",
    "govern": "govern",
    "exchange": "exchange",
    "server": FACE,
    "http_protocol": FACE,
    "serving": FACE,
    "cli": FACE,
    "reports": FACE,
    "key_commands": FACE,
    "admin_api": FACE,
    "loop_api": FACE,
    "loop_reports": FACE,
    "version_api": FACE,
    "correctness_loop": FACE,
    "version_commands": FACE,
    "client_keys": FACE,
    "startup_report": FACE,
    "not_found_log": FACE,
    "http_io": FACE,
    "runtime": FACE,
    "request_guard": FACE,
    "worker_config": FACE,
    "claude_launch": FACE,
    "ui": FACE,
    "__main__": FACE,
    "__init__": FOUNDATION,
}

MAY_IMPORT = {
    FOUNDATION: {FOUNDATION},
    "translate": {FOUNDATION},
    "upstreams": {FOUNDATION},
    "policy": {FOUNDATION},
    "config": {FOUNDATION, "translate", "policy"},
    "routing": {FOUNDATION, "config", "policy"},
    "observe": {FOUNDATION, "config", "policy"},
    "loop": {FOUNDATION, "translate", "policy", "config", "routing", "observe"},
    "govern": {FOUNDATION, "config", "policy", "observe"},
    "exchange": {FOUNDATION, "translate", "upstreams", "policy", "config", "routing", "observe", "loop", "govern"},
    FACE: set(LAYER_OF.values()),
}


def _layer(module: str) -> str:
    top = module.split(".")[1] if "." in module else "__init__"
    assert top in LAYER_OF, f"dragoman.{top} has no layer: place it in LAYER_OF and docs/ARCHITECTURE.md"
    return LAYER_OF[top]


def _imports(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append(node.module)
            # `from dragoman import errors` names a module of the package, not the package itself.
            if node.module == "dragoman":
                found += [f"dragoman.{alias.name}" for alias in node.names]
    return [name for name in found if name.startswith("dragoman.")]


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts)


def test_every_module_has_a_layer() -> None:
    for path in PACKAGE.rglob("*.py"):
        _layer(_module_name(path))


def _crosses(module: str, imported: str) -> bool:
    source, target = _layer(module), _layer(imported)
    return target != source and target not in MAY_IMPORT[source]


def test_no_import_crosses_a_layer_boundary() -> None:
    crossings = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = _module_name(path)
        for name in _imports(path):
            if _crosses(module, name):
                crossings.append(f"{path.relative_to(PACKAGE.parent)}: {_layer(module)} imports {name} ({_layer(name)})")
    assert not crossings, "imports that cross a layer boundary (docs/ARCHITECTURE.md):\n" + "\n".join(crossings)


def test_the_check_sees_a_crossing(tmp_path: Path) -> None:
    # A translator reaching for the transport, or the transport for a route, is exactly what the check is for.
    assert _crosses("dragoman.translate.chat.request", "dragoman.upstreams.client")
    assert _crosses("dragoman.upstreams.client", "dragoman.config.model")
    assert _crosses("dragoman.exchange.lifecycle", "dragoman.server")
    assert not _crosses("dragoman.exchange.lifecycle", "dragoman.translate.chat.request")
    source = tmp_path / "example.py"
    source.write_text("from dragoman import errors\nimport dragoman.upstreams.client\nfrom dragoman.config.model import Route\n")
    assert set(_imports(source)) == {"dragoman.errors", "dragoman.upstreams.client", "dragoman.config.model"}
