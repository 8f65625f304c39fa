"""Typed configuration plumbing: YAML and ``--set`` overrides in, validated frozen dataclasses out.

Configs are plain nested dataclasses (one per component). This module turns untrusted
mappings (YAML files, command-line overrides, sweep axes) into those dataclasses, rejecting
unknown keys and wrongly typed values with a one-line message that names the key, the bad
value and what is allowed. Nothing here knows about any particular config.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

import yaml

from core.errors import UserError

T = TypeVar("T")


class ConfigError(UserError, ValueError):
    """A config value or key a user must fix; ``str(error)`` is the one-line message."""

    def __init__(self, key: str, message: str) -> None:
        self.key = key
        self.message = message
        super().__init__(f"config key '{key}': {message}" if key else message)

    def under(self, prefix: str) -> "ConfigError":
        """The same error with its key placed under ``prefix`` (a parent section)."""
        return ConfigError(f"{prefix}.{self.key}" if self.key else prefix, self.message)


SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")  # a name used in folder names and ids: no '/', no leading '.'


def option(default: Any = dataclasses.MISSING, help: str = "", **kwargs: Any) -> Any:
    """A dataclass field carrying a one-line ``help`` shown by ``scaling config``."""
    if isinstance(default, (list, dict, set)):
        value = default
        return dataclasses.field(default_factory=lambda: type(value)(value), metadata={"help": help}, **kwargs)
    if dataclasses.is_dataclass(default) and isinstance(default, type):
        return dataclasses.field(default_factory=default, metadata={"help": help}, **kwargs)
    return dataclasses.field(default=default, metadata={"help": help}, **kwargs)


def require(condition: bool, key: str, message: str) -> None:
    """Raise a :class:`ConfigError` for ``key`` unless ``condition`` holds (for ``__post_init__``)."""
    if not condition:
        raise ConfigError(key, message)


def _describe_type(annotation: Any) -> str:
    origin = get_origin(annotation)
    if origin is Literal:
        return " | ".join(repr(a) for a in get_args(annotation))
    if origin in (Union, types.UnionType):
        return " | ".join(_describe_type(a) for a in get_args(annotation))
    if origin in (list, tuple, Sequence):
        args = [a for a in get_args(annotation) if a is not Ellipsis]
        return f"list of {_describe_type(args[0])}" if args else "list"
    if annotation is type(None):
        return "null"
    return getattr(annotation, "__name__", str(annotation))


def _convert(value: Any, annotation: Any, key: str) -> Any:
    """Check ``value`` against ``annotation`` and return it in its typed form."""
    origin = get_origin(annotation)
    if annotation is Any:
        return value
    if origin is Literal:
        allowed = get_args(annotation)
        if value not in allowed:
            raise ConfigError(key, f"must be one of {', '.join(repr(a) for a in allowed)}; got {value!r}")
        return value
    if origin in (Union, types.UnionType):
        options = get_args(annotation)
        if value is None:
            if type(None) in options:
                return None
            raise ConfigError(key, f"must be {_describe_type(annotation)}; got null")
        errors = []
        for option_type in options:
            if option_type is type(None):
                continue
            try:
                return _convert(value, option_type, key)
            except ConfigError as error:
                errors.append(error)
        if len(errors) == 1:
            raise errors[0]
        raise ConfigError(key, f"must be {_describe_type(annotation)}; got {value!r}")
    if origin in (list, tuple, Sequence):
        if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
            raise ConfigError(key, f"must be a {_describe_type(annotation)}; got {value!r}")
        item_type = next((a for a in get_args(annotation) if a is not Ellipsis), Any)
        items = [_convert(item, item_type, f"{key}[{index}]") for index, item in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict or annotation is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(key, f"must be a mapping; got {value!r}")
        args = get_args(annotation)
        value_type = args[1] if len(args) == 2 else Any
        return {str(k): _convert(v, value_type, f"{key}.{k}") for k, v in value.items()}
    if dataclasses.is_dataclass(annotation):
        if isinstance(value, annotation):
            return value
        if not isinstance(value, Mapping):
            raise ConfigError(key, f"must be a section (a mapping of keys); got {value!r}")
        try:
            return from_dict(annotation, value)
        except ConfigError as error:
            raise error.under(key) from None
    if annotation is bool:
        if not isinstance(value, bool):
            raise ConfigError(key, f"must be true or false; got {value!r}")
        return value
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise ConfigError(key, f"must be an integer; got {value!r}")
        return value
    if annotation is float:
        if isinstance(value, str):
            value = _float_from_yaml_string(value, key)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(key, f"must be a number; got {value!r}")
        return float(value)
    if annotation is str:
        if not isinstance(value, str):
            raise ConfigError(key, f"must be a string; got {value!r}")
        return value
    raise TypeError(f"unsupported config annotation {annotation!r} for key '{key}'")


def _float_from_yaml_string(text: str, key: str) -> float | str:
    """YAML 1.1 reads ``3e-4`` (no dot) as a string; accept it as the number a user meant."""
    try:
        return float(text)
    except ValueError:
        return text


def from_dict(cls: type[T], data: Mapping[str, Any]) -> T:
    """Build dataclass ``cls`` from ``data``, rejecting unknown keys and ill-typed values.

    Keys missing from ``data`` take the dataclass defaults; ``__post_init__`` checks run last
    and their :class:`ConfigError` keys are relative to ``cls``.
    """
    if not isinstance(data, Mapping):
        raise ConfigError("", f"a config must be a mapping of keys; got {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = [k for k in data if k not in fields]
    if unknown:
        raise ConfigError(str(unknown[0]), f"unknown key; allowed keys here: {', '.join(sorted(fields))}")
    kwargs = {}
    for name, value in data.items():
        kwargs[name] = _convert(value, hints[name], name)
    missing = [
        name
        for name, f in fields.items()
        if name not in kwargs and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise ConfigError(missing[0], "is required")
    return cls(**kwargs)


def to_dict(config: Any) -> dict[str, Any]:
    """The plain-data form of a config dataclass (round-trips through :func:`from_dict`)."""
    return dataclasses.asdict(config)


def content_digest(data: Mapping[str, Any]) -> str:
    """8 hex digits of the sha256 of ``data``'s canonical JSON (keys sorted): what names a config's content."""
    import hashlib
    import json

    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:8]


def parse_override(text: str) -> tuple[list[str], Any]:
    """Split ``a.b.c=value`` into its key path and YAML-parsed value."""
    if "=" not in text:
        raise ConfigError("", f"override {text!r} must look like key=value (e.g. train.lr=0.001)")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise ConfigError("", f"override {text!r} has an empty key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key.split("."), value


def set_path(data: dict[str, Any], path: Sequence[str], value: Any) -> None:
    """Set ``data[path[0]][path[1]]... = value`` in place, creating sections on the way."""
    node = data
    for depth, part in enumerate(path[:-1]):
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise ConfigError(".".join(path[: depth + 1]), f"is a value, not a section; cannot set '{'.'.join(path)}'")
        node = child
    node[path[-1]] = value


def apply_overrides(data: Mapping[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """A deep copy of ``data`` with each ``key=value`` override applied in order."""
    result = _deep_copy(data)
    for text in overrides:
        path, value = parse_override(text)
        set_path(result, path, value)
    return result


def _deep_copy(data: Any) -> Any:
    if isinstance(data, Mapping):
        return {k: _deep_copy(v) for k, v in data.items()}
    if isinstance(data, list):
        return [_deep_copy(v) for v in data]
    return data


class _UniqueKeyLoader(yaml.SafeLoader):
    """The safe loader, refusing a mapping that repeats a key (YAML would silently keep the last value)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, Hashable) and key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key '{key}' appears twice in one mapping; keep one", key_node.start_mark)
            if isinstance(key, Hashable):
                seen.add(key)
        return super().construct_mapping(node, deep=deep)


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping, with one-line errors naming the file (and line) on failure."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError("", f"{path}: config file not found")
    try:
        data = yaml.load(path.read_text(), Loader=_UniqueKeyLoader)  # noqa: S506 (a SafeLoader subclass)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise ConfigError("", f"{path}{where}: invalid YAML ({problem})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError("", f"{path}: a config file must hold a mapping of sections, got {type(data).__name__}")
    return data


def describe(cls: type, prefix: str = "") -> list[tuple[str, str, Any, str]]:
    """(key, type, default, help) for every leaf option of config class ``cls``, depth first."""
    rows: list[tuple[str, str, Any, str]] = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        key = f"{prefix}{f.name}"
        annotation = hints[f.name]
        if dataclasses.is_dataclass(annotation):
            rows.extend(describe(annotation, prefix=f"{key}."))
            continue
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            default = "(required)"
        rows.append((key, _describe_type(annotation), default, f.metadata.get("help", "")))
    return rows
