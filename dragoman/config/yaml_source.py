"""YAML config text → plain data, with every node's line kept so errors can name file and line."""

from __future__ import annotations

import difflib
import math
import os
import re
from collections.abc import Mapping
from typing import Any

import msgspec
import yaml
from msgspec import inspect as msgspec_inspect

from dragoman.errors import ConfigError

Path = tuple[str | int, ...]


# --- YAML with line numbers --------------------------------------------------------------------------------


class _Loader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 scalars: only true/false are booleans, and dates stay strings."""


# YAML 1.1 reads `off`, `no`, `on`, `yes` as booleans, which would turn `reasoning_effort: off` into False.
_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag not in ("tag:yaml.org,2002:bool", "tag:yaml.org,2002:timestamp")]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def parse_yaml(text: str, source: str) -> tuple[yaml.Node | None, Any]:
    """The node tree (for line numbers) and the plain data it constructs to."""
    loader = _Loader(text)
    try:
        root = loader.get_single_node()
        if root is None:
            return None, None
        _reject_duplicate_keys(root, source)
        return root, loader.construct_document(root)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = ": ".join(p for p in (exc.context, exc.problem) if p)
        raise ConfigError(f"{source}{line}: invalid YAML: {problem}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: invalid YAML: {exc}") from None
    finally:
        loader.dispose()


def _reject_duplicate_keys(node: yaml.Node, source: str, visited: set[int] | None = None) -> None:
    # PyYAML silently keeps the last of two equal keys; a repeated key in a config is always a mistake.
    visited = set() if visited is None else visited
    if id(node) in visited:  # aliases can share (or, recursively, contain) nodes
        return
    visited.add(id(node))
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode) and key.value != "<<":
                line = key.start_mark.line + 1
                if key.value in seen:
                    raise ConfigError(f'{source}:{line}: duplicate key "{key.value}" (first on line {seen[key.value]})')
                seen[key.value] = line
            _reject_duplicate_keys(value, source, visited)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            _reject_duplicate_keys(item, source, visited)


def _child(node: yaml.Node, part: str | int, *, key: bool = False) -> yaml.Node | None:
    if isinstance(part, int) and isinstance(node, yaml.SequenceNode) and 0 <= part < len(node.value):
        return node.value[part]
    if isinstance(part, str) and isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if key_node.value == part:
                return key_node if key else value_node
    return None


def format_path(path: Path) -> str:
    text = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path)
    return text.lstrip(".")


# --- turning msgspec's errors into located messages ---------------------------------------------------------

_AT = re.compile(r"^(?P<msg>.*?)(?: - at (?P<key>`key` in )?`\$(?P<path>[^`]*)`)?$", re.DOTALL)
_PART = re.compile(r"\.(\w+)|\[(\d+)\]")
_UNKNOWN = re.compile(r"^Object contains unknown field `(?P<field>.*)`$")
_MISSING = re.compile(r"^Object missing required field `(?P<field>.*)`$")


class Source:
    """The file being loaded: its name, node tree and environment, and how to raise located errors."""

    def __init__(
        self, name: str, root: yaml.Node | None, env: Mapping[str, str], missing: list[str] | None = None
    ) -> None:
        self.name = name
        self.root = root
        self.env = env
        self.base_dir = os.path.dirname(name)
        self.missing = missing  # None: a secret that cannot be read is an error; else it is noted here

    def missing_secret(self, path: Path, problem: str) -> None:
        """A secret that cannot be read: a ConfigError, or, when loading for `dragoman check`, a noted warning."""
        error = self.error(path, problem)
        if self.missing is None:
            raise error
        self.missing.append(str(error))

    def choice(self, path: Path, value: Any, allowed: tuple[Any, ...]) -> None:
        """Refuse a value the gateway does not implement: it would be silently ignored downstream."""
        if value not in allowed:
            raise self.error(path, f'"{value}" is not one of: {", ".join(a for a in allowed if a)}')

    def has(self, path: Path) -> bool:
        """Whether the file itself writes a value at path (a default does not count)."""
        node = self.root
        for part in path:
            node = None if node is None else _child(node, part)
        return node is not None

    def line(self, path: Path, *, key: bool = False) -> int:
        """The 1-based line of the deepest node along path (the key's own line when key is set)."""
        node = self.node(path, key=key)
        return 1 if node is None else node.start_mark.line + 1

    def node(self, path: Path, *, key: bool = False) -> yaml.Node | None:
        """The deepest node along path."""
        node = self.root
        if node is None:
            return None
        for i, part in enumerate(path):
            child = _child(node, part, key=key and i == len(path) - 1)
            if child is None:
                break
            node = child
        return node

    def text_start_line(self, path: Path) -> int:
        """The file line where the text of the scalar at path begins (a `|` block starts on the next line)."""
        node = self.node(path)
        if node is None:
            return 1
        style = getattr(node, "style", None)
        return node.start_mark.line + (2 if style in ("|", ">") else 1)

    def error(self, path: Path, problem: str, *, key: bool = False) -> ConfigError:
        where = f"{format_path(path)}: " if path else ""
        return ConfigError(f"{self.name}:{self.line(path, key=key)}: {where}{problem}")

    def convert(self, data: Any, cls: type, path: Path = ()) -> Any:
        """msgspec.convert, with a failure reported at the YAML line it came from."""
        self._refuse_non_finite(data, path)
        try:
            return msgspec.convert(data, cls)
        except msgspec.ValidationError as exc:
            raise self._located(exc, cls, path) from None

    def _refuse_non_finite(self, data: Any, path: Path, visited: set[int] | None = None) -> None:
        # YAML reads .inf, .nan and 1.0e+400 as floats that pass every bound msgspec checks (inf > 0), and no
        # setting means anything with them: an infinite window or price turns the governance arithmetic into NaN
        # (a 500 on every request, or a budget never reached). One pass here covers every number in the file.
        if isinstance(data, float) and not math.isfinite(data):
            node = self.node(path)
            written = node.value if isinstance(node, yaml.ScalarNode) else str(data)
            raise self.error(path, f"{written} is not a finite number: write a finite value (no .inf or .nan)")
        if not isinstance(data, (dict, list)):
            return
        visited = set() if visited is None else visited
        if id(data) in visited:  # an alias shares (or, recursively, contains) its anchor's data
            return
        visited.add(id(data))
        items = data.items() if isinstance(data, dict) else enumerate(data)
        for part, value in items:
            self._refuse_non_finite(value, path + (part,), visited)

    def _located(self, exc: msgspec.ValidationError, cls: type, prefix: Path) -> ConfigError:
        found = _AT.match(str(exc))
        assert found is not None  # the pattern matches any string
        message = found["msg"].replace("`", "") + (" (in a key)" if found["key"] else "")
        rel = tuple(int(i) if i else name for name, i in _PART.findall(found["path"] or ""))
        path = prefix + rel
        if unknown := _UNKNOWN.match(found["msg"]):
            field = unknown["field"]
            where = f"in {format_path(path)}" if path else "at the top level"
            hint = _did_you_mean(field, _field_names(cls, rel))
            line = self.line(path + (field,), key=True)
            return ConfigError(f'{self.name}:{line}: unknown field "{field}" {where}{hint}')
        if missing := _MISSING.match(found["msg"]):
            return self.error(path, f'missing required field "{missing["field"]}"')
        return self.error(path, message)


def _field_names(cls: type, path: Path) -> list[str]:
    """The field names of the Struct found by following path from cls (for "did you mean")."""
    info: Any = msgspec_inspect.type_info(cls)
    for part in path:
        if isinstance(part, int):
            info = getattr(info, "item_type", None)
        else:
            struct = _struct_of(info)
            info = next((f.type for f in struct.fields if f.name == part), None) if struct is not None else None
        if info is None:
            return []
    struct = _struct_of(info)
    return [f.name for f in struct.fields] if struct is not None else []


def _struct_of(info: Any) -> Any:
    if isinstance(info, msgspec_inspect.UnionType):
        return next((s for t in info.types if (s := _struct_of(t)) is not None), None)
    return info if isinstance(info, msgspec_inspect.StructType) else None


def _did_you_mean(field: str, names: list[str]) -> str:
    close = difflib.get_close_matches(field, names, n=1)
    if close:
        return f' (did you mean "{close[0]}"?)'
    return f" (expected one of: {', '.join(names)})" if names else ""
