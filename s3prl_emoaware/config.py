"""YAML configs mapped onto dataclasses: the one source of defaults.

Every tunable of the package lives in a dataclass with its default. A YAML file only
overrides fields, and a field the dataclass does not know is an error that names the
file and the key (a typo should never be silently ignored). The CLI overrides fields
again with ``key.sub=value`` strings.

Shipped configs (``upstream_configs/``, ``downstream_configs/``) are package data, so
they are found the same way from a checkout and from a non-editable install.
"""

from __future__ import annotations

import dataclasses
import typing
from importlib import resources
from pathlib import Path
from typing import Any, Dict, Iterable, Mapping, Optional, Type, TypeVar, Union

import yaml

__all__ = [
    "ConfigError",
    "from_dict",
    "to_dict",
    "load_yaml",
    "load_config",
    "apply_overrides",
    "shipped_config",
    "shipped_config_dir",
]

T = TypeVar("T")


class ConfigError(ValueError):
    """A config file or override is invalid; the message names the file and the key."""


def _field_types(cls: type) -> Dict[str, Any]:
    return typing.get_type_hints(cls)


def _coerce(value: Any, annotation: Any, where: str) -> Any:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is Union:  # Optional[X]
        if value is None:
            return None
        non_none = [a for a in args if a is not type(None)]
        return _coerce(value, non_none[0], where) if len(non_none) == 1 else value
    if dataclasses.is_dataclass(annotation):
        if isinstance(value, annotation):
            return value
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a mapping for {annotation.__name__}, got {value!r}")
        return from_dict(annotation, value, where)
    if origin in (list, tuple) and isinstance(value, (list, tuple)):
        inner = args[0] if args else Any
        items = [_coerce(v, inner, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if annotation is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if annotation is int and isinstance(value, float) and value.is_integer():
        return int(value)
    if annotation in (int, float, str, bool) and not isinstance(value, annotation):
        raise ConfigError(f"{where}: expected {annotation.__name__}, got {value!r}")
    return value


def from_dict(cls: Type[T], data: Mapping[str, Any], where: str = "config") -> T:
    """Build dataclass ``cls`` from a (nested) mapping; unknown keys raise ``ConfigError``."""
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls!r} is not a dataclass")
    if data is None:
        data = {}
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise ConfigError(
            f"{where}: unknown key(s) {', '.join(unknown)} for {cls.__name__}; "
            f"known keys: {', '.join(sorted(known))}"
        )
    hints = _field_types(cls)
    kwargs = {k: _coerce(v, hints[k], f"{where}.{k}") for k, v in data.items()}
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except ValueError as err:  # a dataclass's own range check (__post_init__): one line naming where
        raise ConfigError(f"{where}: {err}") from None


def to_dict(obj: Any) -> Any:
    """Plain nested dict/list of a dataclass (what checkpoints store: no pickled objects)."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj


def load_yaml(path: Union[str, Path]) -> Dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML ({err})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping")
    return data


def _parse_value(text: str) -> Any:
    return yaml.safe_load(text)


def apply_overrides(data: Dict[str, Any], overrides: Iterable[str]) -> Dict[str, Any]:
    """Apply ``a.b.c=value`` overrides (values parsed as YAML) to a nested dict, in place."""
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r}: expected KEY=VALUE (e.g. model.hidden_size=64)")
        key, text = item.split("=", 1)
        parts = key.strip().split(".")
        node = data
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {item!r}: {p} is not a mapping")
        node[parts[-1]] = _parse_value(text)
    return data


def load_config(cls: Type[T], path: Optional[Union[str, Path]] = None, overrides: Iterable[str] = ()) -> T:
    """Defaults of ``cls``, overridden by the YAML at ``path``, then by ``overrides``."""
    data = load_yaml(path) if path is not None else {}
    apply_overrides(data, overrides)
    return from_dict(cls, data, where=str(path) if path is not None else cls.__name__)


def shipped_config_dir(kind: str) -> Path:
    """Folder of the shipped configs: ``kind`` is ``upstream_configs`` or ``downstream_configs``."""
    if kind not in ("upstream_configs", "downstream_configs"):
        raise ValueError(f"unknown config kind {kind!r}")
    try:
        # installed (editable or not): setup.cfg maps the top-level folder to this subpackage
        return Path(str(resources.files(f"s3prl_emoaware.{kind}")))
    except ModuleNotFoundError:
        # a plain checkout on sys.path: the folder sits beside the package
        checkout = Path(__file__).resolve().parent.parent / kind
        if checkout.is_dir():
            return checkout
        raise ConfigError(f"shipped configs not found: {kind} is neither installed nor at {checkout}") from None


def shipped_config(kind: str, name: str) -> Path:
    """Path of a shipped config file, e.g. ``shipped_config("downstream_configs", "emotion")``."""
    folder = shipped_config_dir(kind)
    path = folder / (name if name.endswith(".yaml") else f"{name}.yaml")
    if not path.is_file():
        available = sorted(p.stem for p in folder.glob("*.yaml"))
        raise ConfigError(f"no shipped config {name!r} in {kind}; available: {', '.join(available)}")
    return path
