"""A check that the data keys of a downstream config (its registry spec's ``data_keys``) are set.

The stock experts fail deep inside a dataset constructor when a path is wrong; the
run-downstream wrapper calls :func:`check_data_roots` first so the user gets one line that
names the key to set and how.
"""

from __future__ import annotations

from pathlib import Path
from typing import List

from ..config import ConfigError
from .registry import config_value, get

__all__ = ["data_root_keys", "check_data_roots"]


def data_root_keys(downstream: str) -> List[str]:
    """Dotted keys (under the config) that must name existing paths; [] for an unregistered downstream."""
    spec = get(downstream)
    return list(spec.data_keys) if spec is not None else []


def check_data_roots(downstream: str, config: dict) -> None:
    """Raise ``ConfigError`` naming the first data key that is unset or points nowhere."""
    for key in data_root_keys(downstream):
        value = config_value(config, key)
        values = value if isinstance(value, list) else [value]
        for item in values:
            if item is None or str(item).startswith("SET_ME") or str(item).strip() == "":
                raise ConfigError(f"{key} is not set for -d {downstream}: pass -o \"config.{key}='/path'\"")
            if not Path(str(item)).exists():
                raise ConfigError(f"{key} = {item}: path does not exist (set it with -o \"config.{key}='/path'\")")
