"""YAML configs mapped onto dataclasses: the one source of defaults.

Every tunable of the package lives in a dataclass with its default. A YAML file only
overrides fields, and a field the dataclass does not know is an error that names the
file and the key (a typo should never be silently ignored). The CLI overrides fields
again with ``key.sub=value`` strings.

Every problem of a config is one :class:`ConfigError` line that names where it came from
(the file, or the ``-o`` override that introduced it) and the key: an unknown key (with the
closest known one), a value of the wrong type, a value a dataclass's ``__post_init__``
refuses (its range checks), malformed or empty YAML, a duplicated key, a YAML tag such as
``!!python/object`` (files and override values are read with PyYAML's safe loader, which
constructs plain data only).

Shipped configs (``upstream_configs/``, ``downstream_configs/``) are package data, so
they are found the same way from a checkout and from a non-editable install.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import math
import re
import typing
from importlib import resources
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional, Type, TypeVar, Union

import yaml

__all__ = [
    "ConfigError",
    "from_dict",
    "to_dict",
    "load_yaml",
    "parse_yaml",
    "describe_yaml_error",
    "load_config",
    "apply_overrides",
    "shipped_config",
    "shipped_config_dir",
    "check_positive",
    "check_non_negative",
    "check_fraction",
    "check_choice",
]

T = TypeVar("T")

# what PyYAML 1.1 reads as a string but a person writes as a number (``lr: 1e-4``)
_NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


class ConfigError(ValueError):
    """A config file or override is invalid; the message names the file and the key."""


# --- range checks for the config dataclasses' __post_init__ (ConfigError naming the field) -----------------


def check_positive(obj: Any, *names: str) -> None:
    """Each field in ``names`` is a finite number > 0."""
    for name in names:
        v = getattr(obj, name)
        if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
            raise ConfigError(f"{name} must be > 0, got {v!r}")


def check_non_negative(obj: Any, *names: str) -> None:
    """Each field in ``names`` is a finite number >= 0."""
    for name in names:
        v = getattr(obj, name)
        if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0):
            raise ConfigError(f"{name} must be >= 0, got {v!r}")


def check_fraction(obj: Any, name: str, low_open: bool = False, high_open: bool = False) -> None:
    """Field ``name`` is in [0, 1], with the ends excluded as asked."""
    v = getattr(obj, name)
    ok = isinstance(v, (int, float)) and (0 < v if low_open else 0 <= v) and (v < 1 if high_open else v <= 1)
    if not ok:
        raise ConfigError(f"{name} must be in {'(' if low_open else '['}0, 1{')' if high_open else ']'}, got {v!r}")


def check_choice(obj: Any, name: str, choices: Iterable[Any]) -> None:
    choices = tuple(choices)
    v = getattr(obj, name)
    if v not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(map(str, choices))}, got {v!r}")


# --- YAML -------------------------------------------------------------------------------------------------


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader (plain data only, no tags constructed) that refuses duplicated keys."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if isinstance(key, typing.Hashable) and key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"duplicated key {key!r}", key_node.start_mark)
            if isinstance(key, typing.Hashable):
                seen.add(key)
        return super().construct_mapping(node, deep=deep)


def describe_yaml_error(err: yaml.YAMLError) -> str:
    """One line for a PyYAML error (their ``str`` spans several lines and quotes the input)."""
    mark = getattr(err, "problem_mark", None) or getattr(err, "context_mark", None)
    problem = " ".join(str(getattr(err, "problem", None) or err).split())
    tag = re.search(r"tag '?tag:yaml\.org,2002:([^' ]+)", problem) or re.search(r"tag '?(![^' ]+)", problem)
    if tag is not None and "constructor" in problem:
        problem = (
            f"YAML tag !!{tag.group(1).lstrip('!')} is not allowed (configs are plain data; tags are never constructed)"
        )
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    return f"{where}{problem}"


def parse_yaml(text: str, where: str) -> Any:
    """Plain data of YAML ``text`` (safe loading, duplicated keys refused); ``ConfigError`` naming ``where``."""
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader is a SafeLoader
    except yaml.YAMLError as err:
        raise ConfigError(f"{where}: not valid YAML: {describe_yaml_error(err)}") from None


def load_yaml(path: Union[str, Path]) -> Dict[str, Any]:
    """The top-level mapping of a YAML config file (empty, non-mapping or malformed: ``ConfigError``)."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{path}: is a folder, not a config file")
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a text file (not UTF-8)") from None
    except OSError as err:
        raise ConfigError(f"{path}: cannot read the config ({err.strerror or err})") from None
    data = parse_yaml(text, str(path))
    if data is None:
        raise ConfigError(f"{path}: the config is empty (no keys); give the keys to change, or leave out the file")
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping of keys, got a {type(data).__name__}")
    return data


# --- YAML data -> dataclass ------------------------------------------------------------------------------


def _field_types(cls: type) -> Dict[str, Any]:
    return typing.get_type_hints(cls)


def _error(where: str, key: str, problem: str) -> ConfigError:
    return ConfigError(f"{where}: {key}: {problem}" if key else f"{where}: {problem}")


def _type_name(annotation: Any) -> str:
    return getattr(annotation, "__name__", None) or str(annotation).replace("typing.", "")


def _coerce(value: Any, annotation: Any, where: str, key: str) -> Any:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if annotation is Any or isinstance(annotation, TypeVar):
        return value
    if origin is Union:  # Optional[X]
        if value is None and type(None) in args:
            return None
        non_none = [a for a in args if a is not type(None)]
        if len(non_none) == 1:
            return _coerce(value, non_none[0], where, key)
        for option in non_none:
            try:
                return _coerce(value, option, where, key)
            except ConfigError:
                continue
        raise _error(where, key, f"expected {_type_name(annotation)}, got {value!r}")
    if origin is typing.Literal:
        if value not in args:
            raise _error(where, key, f"must be one of {', '.join(map(repr, args))}, got {value!r}")
        return value
    if dataclasses.is_dataclass(annotation):
        if isinstance(annotation, type) and isinstance(value, annotation):
            return value
        if not isinstance(value, Mapping):
            raise _error(where, key, f"expected a mapping of {annotation.__name__}'s keys, got {value!r}")
        return _from_dict(annotation, value, where, key)
    if annotation in (dict, Dict) or origin is dict:
        if not isinstance(value, Mapping):
            raise _error(where, key, f"expected a mapping, got {value!r}")
        if len(args) == 2:
            return {k: _coerce(v, args[1], where, f"{key}.{k}") for k, v in value.items()}
        return dict(value)
    if annotation in (list, tuple, List, typing.Tuple) or origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise _error(where, key, f"expected a list, got {value!r}")
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                raise _error(where, key, f"expected a list of {len(args)} items, got {value!r}")
            return tuple(_coerce(v, a, where, f"{key}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
        inner = args[0] if args else Any
        items = [_coerce(v, inner, where, f"{key}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple or annotation is tuple else items
    if annotation is bool:
        if not isinstance(value, bool):
            raise _error(where, key, f"expected true or false, got {value!r}")
        return value
    if annotation is float:
        if isinstance(value, str) and _NUMBER.fullmatch(value.strip()):
            value = float(value)  # ``1e-4``: YAML 1.1 reads it as a string
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _error(where, key, f"expected a number, got {value!r}")
        if not math.isfinite(value):
            raise _error(where, key, f"expected a finite number, got {value!r}")
        return float(value)
    if annotation is int:
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise _error(where, key, f"expected an integer, got {value!r}")
        return value
    if annotation is str:
        if not isinstance(value, str):
            raise _error(where, key, f"expected a string, got {value!r}")
        return value
    if annotation is Path:
        if not isinstance(value, (str, Path)):
            raise _error(where, key, f"expected a path, got {value!r}")
        return Path(value)
    return value


def _unknown_keys(cls: type, unknown: List[str], known: Iterable[str]) -> str:
    known = sorted(known)
    hints = []
    for k in unknown:
        close = difflib.get_close_matches(k, known, n=1)
        hints.append(f"{k} (did you mean {close[0]}?)" if close else k)
    return f"unknown key(s) {', '.join(hints)} for {cls.__name__}; known keys: {', '.join(known)}"


def _from_dict(cls: Type[T], data: Optional[Mapping[str, Any]], where: str, key: str) -> T:
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise _error(where, key, f"expected a mapping of {cls.__name__}'s keys, got {data!r}")
    known = {f.name: f for f in dataclasses.fields(cls) if f.init}
    not_names = [k for k in data if not isinstance(k, str)]
    if not_names:
        raise _error(where, key, f"key {not_names[0]!r} is not a name (keys of {cls.__name__} are strings)")
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise _error(where, key, _unknown_keys(cls, unknown, known))
    missing = sorted(
        name
        for name, f in known.items()
        if name not in data and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    )
    if missing:
        raise _error(where, key, f"missing required key(s) {', '.join(missing)} for {cls.__name__}")
    hints = _field_types(cls)
    kwargs = {k: _coerce(v, hints[k], where, f"{key}.{k}" if key else k) for k, v in data.items()}
    from .utils.errors import UserFacingError

    try:
        return cls(**kwargs)
    except (ValueError, UserFacingError) as err:  # a dataclass's own range check (__post_init__)
        raise _error(where, key, str(err)) from None


def from_dict(cls: Type[T], data: Mapping[str, Any], where: str = "config") -> T:
    """Build dataclass ``cls`` from a (nested) mapping; any problem is a ``ConfigError`` naming ``where`` and the key."""
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls!r} is not a dataclass")
    return _from_dict(cls, data, where, "")


def to_dict(obj: Any) -> Any:
    """Plain nested dict/list of a dataclass (what checkpoints store: no pickled objects)."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj


# --- overrides -------------------------------------------------------------------------------------------


def _split_override(item: str):
    if not isinstance(item, str) or "=" not in item:
        raise ConfigError(f"-o {item}: expected KEY=VALUE (e.g. model.hidden_size=64)")
    key, text = item.split("=", 1)
    parts = key.strip().split(".")
    if not all(p.strip() == p and p for p in parts):
        raise ConfigError(f"-o {item}: the key {key!r} has an empty or blank part (expected a.b.c=VALUE)")
    return parts, parse_yaml(text, f"-o {item}: the value")


def apply_overrides(data: Dict[str, Any], overrides: Iterable[str]) -> Dict[str, Any]:
    """Apply ``a.b.c=value`` overrides (values parsed as YAML) to a nested dict, in place."""
    for item in overrides:
        parts, value = _split_override(item)
        node = data
        for i, p in enumerate(parts[:-1]):
            if node.get(p) is None:
                node[p] = {}
            node = node[p]
            if not isinstance(node, dict):
                raise ConfigError(
                    f"-o {item}: {'.'.join(parts[: i + 1])} is not a mapping "
                    f"(it is {node!r}), so it has no key {parts[i + 1]!r}"
                )
        node[parts[-1]] = value
    return data


def load_config(
    cls: Type[T], path: Optional[Union[str, Path]] = None, overrides: Iterable[str] = (), where: Optional[str] = None
) -> T:
    """Defaults of ``cls``, overridden by the YAML at ``path``, then by ``overrides``.

    ``where`` names the config in messages (default: the path, or the class's name).

    An error is named after what caused it: the file when the file alone is invalid, else
    the first override after which the config is invalid (``-o KEY=VALUE (over FILE): key: problem``).
    """
    where = where or (str(path) if path is not None else cls.__name__)
    base = load_yaml(path) if path is not None else {}
    overrides = list(overrides)
    data = apply_overrides(copy.deepcopy(base), overrides)
    try:
        return _from_dict(cls, data, where, "")
    except ConfigError:
        if not overrides:
            raise
        _from_dict(cls, base, where, "")  # the file alone is invalid: that error, naming the file
        data = copy.deepcopy(base)
        for item in overrides:
            apply_overrides(data, [item])
            try:
                _from_dict(cls, data, f"-o {item} (over {where})", "")
            except ConfigError as err:
                raise err from None
        raise


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
