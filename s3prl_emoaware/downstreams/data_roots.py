"""Which keys of each shipped downstream config are data roots, and a check that they are set.

The stock experts fail deep inside a dataset constructor when a path is wrong; the
run-downstream wrapper calls :func:`check_data_roots` first so the user gets one line that
names the key to set and how.
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List

from ..config import ConfigError

__all__ = ["DATA_ROOT_KEYS", "check_data_roots"]

# downstream name -> dotted keys (under the config) that must name existing paths
DATA_ROOT_KEYS: Dict[str, List[str]] = {
    "emotion": ["downstream_expert.datarc.root", "downstream_expert.datarc.meta_data"],
    "fluent_commands": ["downstream_expert.datarc.file_path"],
    "phoneme_recognition": ["downstream_expert.corpus.path", "downstream_expert.corpus.lexicon",
                            "downstream_expert.text.vocab_file"],
    "emotion_cremad": ["downstream_expert.datarc.root"],
    "emotion_esd": ["downstream_expert.datarc.root"],
    "emotion_ravdess": ["downstream_expert.datarc.root"],
}


def _lookup(config: dict, key: str):
    node = config
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def check_data_roots(downstream: str, config: dict) -> None:
    """Raise ``ConfigError`` naming the first data key that is unset or points nowhere."""
    for key in DATA_ROOT_KEYS.get(downstream, []):
        value = _lookup(config, key)
        values = value if isinstance(value, list) else [value]
        for item in values:
            if item is None or str(item).startswith("SET_ME") or str(item).strip() == "":
                raise ConfigError(f"{key} is not set for -d {downstream}: pass -o \"config.{key}='/path'\"")
            if not Path(str(item)).exists():
                raise ConfigError(f"{key} = {item}: path does not exist (set it with -o \"config.{key}='/path'\")")
