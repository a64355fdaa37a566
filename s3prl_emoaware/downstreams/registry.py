"""One spec per downstream: its config, data keys, audio files, options and how its runs are scored.

Everything that differs between downstreams is written here once and read by every caller:

- ``run-downstream`` (:mod:`s3prl_emoaware.s3prl_adapters.runner`): the shipped config when no
  ``-c`` is given, the data keys checked before a run (:mod:`.data_roots`), ``--label-fraction``
  and ``--all-folds``;
- the audio check before a run (:mod:`s3prl_emoaware.corpora.validate`): which files a config
  reads and whether its reader resamples;
- the leaderboard (:mod:`s3prl_emoaware.leaderboard`): how an experiment folder is scored
  (:mod:`.scoring`);
- the demo and the studies: where the data keys point for a generated corpus.

A new downstream is its YAML in ``downstream_configs/``, its entry package in
``s3prl_adapters/downstream_entry/<name>/`` (only for our own experts: s3prl imports ``-d NAME``
from there) and one :func:`register` call.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from . import scoring
from .scoring import Score

__all__ = [
    "DownstreamSpec",
    "register",
    "unregister",
    "get",
    "require",
    "names",
    "scorers",
    "config_value",
    "has_config_key",
    "override_string",
]


@dataclass(frozen=True)
class DownstreamSpec:
    """What the package needs to know about one downstream.

    Attributes:
        name: the runner's ``-d`` name.
        data_keys: dotted keys under the config that must name existing paths (checked before a
            run, so a wrong path is one line naming the key).
        audio_files: config -> the audio files that config will read (header-checked before a run).
        score: experiment folder -> its test-split :class:`~.scoring.Score` rows.
        resamples: the reader resamples other rates to 16 kHz (another rate is logged, not refused).
        label_fraction_key: dotted key of the class-stratified training-label fraction
            (``--label-fraction``), or None where the downstream has none.
        fold_key: dotted key of the held-out fold (``--all-folds``, the demo's folds), or None.
        folds: number of folds (``fold1`` .. ``fold<folds>``) when ``fold_key`` is set.
        corpus: generator layout (``synth-corpus`` kind) of the corpus the demo and studies use.
        data_values: corpus folder in that layout -> {data key: value} pointing the data keys at it.
        config: shipped config name (``downstream_configs/<config>.yaml``); default ``name``.
    """

    name: str
    data_keys: Tuple[str, ...]
    audio_files: Callable[[dict], List[Path]]
    score: Callable[[Path], List[Score]]
    resamples: bool = False
    label_fraction_key: Optional[str] = None
    fold_key: Optional[str] = None
    folds: int = 0
    corpus: Optional[str] = None
    data_values: Optional[Callable[[Path], Dict[str, object]]] = None
    config: Optional[str] = None

    def __post_init__(self):
        if self.fold_key is not None and self.folds < 1:
            raise ValueError(f"downstream {self.name!r}: fold_key needs folds >= 1")
        if (self.corpus is None) != (self.data_values is None):
            raise ValueError(f"downstream {self.name!r}: corpus and data_values go together")

    @property
    def config_name(self) -> str:
        return self.config or self.name

    def root_override(self, corpus_dir: Path) -> str:
        """s3prl ``-o`` text pointing the data keys at ``corpus_dir`` (a corpus in layout ``corpus``)."""
        if self.data_values is None:
            raise ValueError(f"downstream {self.name!r} names no corpus layout for its data keys")
        return override_string(self.data_values(Path(corpus_dir)))


_REGISTRY: Dict[str, DownstreamSpec] = {}


def register(spec: DownstreamSpec, replace: bool = False) -> DownstreamSpec:
    """Add ``spec``; a second spec of the same name is an error unless ``replace``."""
    if spec.name in _REGISTRY and not replace:
        raise ValueError(f"downstream {spec.name!r} is already registered")
    _REGISTRY[spec.name] = spec
    return spec


def unregister(name: str) -> None:
    _REGISTRY.pop(name, None)


def get(name: Optional[str]) -> Optional[DownstreamSpec]:
    """The spec of ``-d name``, or None for a downstream we know nothing about (e.g. stock ``ctc``)."""
    return _REGISTRY.get(name) if name is not None else None


def require(name: str) -> DownstreamSpec:
    spec = get(name)
    if spec is None:
        raise ValueError(f"unknown downstream {name!r}; registered: {', '.join(names())}")
    return spec


def names() -> List[str]:
    return list(_REGISTRY)


def scorers() -> List[Callable[[Path], List[Score]]]:
    """Every registered scoring rule, once each, in registration order (for unregistered downstreams)."""
    out: List[Callable[[Path], List[Score]]] = []
    for spec in _REGISTRY.values():
        if spec.score not in out:
            out.append(spec.score)
    return out


def config_value(config: Mapping, dotted: str):
    """``config["a"]["b"]`` for ``"a.b"``; None where a part is missing."""
    node = config
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def has_config_key(config: Mapping, dotted: str) -> bool:
    *parents, last = dotted.split(".")
    node = config_value(config, ".".join(parents)) if parents else config
    return isinstance(node, Mapping) and last in node


def _quoted(value) -> str:
    return f"'{value}'"


def override_string(values: Mapping[str, object]) -> str:
    """``{"a.b": path, "c": [path]}`` -> ``config.a.b='path',,config.c=['path']`` (s3prl's ``-o`` syntax)."""
    items = []
    for key, value in values.items():
        text = "[" + ", ".join(_quoted(v) for v in value) + "]" if isinstance(value, (list, tuple)) else _quoted(value)
        items.append(f"config.{key}={text}")
    return ",,".join(items)


# --- the audio files each shipped config reads ------------------------------------------------


def _required(config: Mapping, dotted: str):
    value = config_value(config, dotted)
    if value is None:
        raise KeyError(dotted)
    return value


def _iemocap_files(config: dict) -> List[Path]:
    root = Path(_required(config, "downstream_expert.datarc.root"))
    meta = Path(_required(config, "downstream_expert.datarc.meta_data"))
    fold = str(_required(config, "downstream_expert.datarc").get("test_fold") or "fold1").replace("fold", "Session")
    files = []
    for name in ("train_meta_data.json", "test_meta_data.json"):
        path = meta / fold / name
        if path.is_file():
            files += [root / item["path"] for item in json.loads(path.read_text())["meta_data"]]
    return files


def _fsc_files(config: dict) -> List[Path]:
    root = Path(_required(config, "downstream_expert.datarc.file_path"))
    files = []
    for split in ("train", "valid", "test"):
        with open(root / "data" / f"{split}_data.csv", newline="") as f:
            files += [root / row["path"] for row in csv.DictReader(f)]
    return files


def _librispeech_files(config: dict) -> List[Path]:
    from ..corpora.layouts.common import visible

    corpus = _required(config, "downstream_expert.corpus")
    root = Path(corpus["path"])
    return [
        p for split in corpus["train"] + corpus["dev"] + corpus["test"] for p in visible(root / split, "*/*/*.flac")
    ]


def _layout_files(config: dict) -> List[Path]:
    from ..corpora.reader import read_corpus

    datarc = _required(config, "downstream_expert.datarc")
    return [
        u.path
        for u in read_corpus(datarc["root"], datarc.get("layout", "auto"), **dict(datarc.get("reader_options") or {}))
    ]


# --- the shipped downstreams -------------------------------------------------------------------


def _ser(corpus: str) -> DownstreamSpec:
    return DownstreamSpec(
        name=f"emotion_{corpus}",
        data_keys=("downstream_expert.datarc.root",),
        audio_files=_layout_files,
        score=scoring.metrics_json_scores,
        resamples=True,
        label_fraction_key="downstream_expert.datarc.label_fraction",
        corpus=corpus,
        data_values=lambda root: {"downstream_expert.datarc.root": str(root)},
    )


def _register_shipped(specs: Sequence[DownstreamSpec]) -> None:
    for spec in specs:
        register(spec)


_register_shipped(
    [
        DownstreamSpec(
            name="emotion",
            data_keys=("downstream_expert.datarc.root", "downstream_expert.datarc.meta_data"),
            audio_files=_iemocap_files,
            score=scoring.fold_scores,
            fold_key="downstream_expert.datarc.test_fold",
            folds=5,
            corpus="iemocap",
            data_values=lambda root: {
                "downstream_expert.datarc.root": str(root),
                "downstream_expert.datarc.meta_data": str(root / "meta_data"),
            },
        ),
        DownstreamSpec(
            name="fluent_commands",
            data_keys=("downstream_expert.datarc.file_path",),
            audio_files=_fsc_files,
            score=scoring.intent_scores,
            corpus="fsc",
            data_values=lambda root: {"downstream_expert.datarc.file_path": str(root)},
        ),
        DownstreamSpec(
            name="phoneme_recognition",
            data_keys=(
                "downstream_expert.corpus.path",
                "downstream_expert.corpus.lexicon",
                "downstream_expert.text.vocab_file",
            ),
            audio_files=_librispeech_files,
            score=scoring.per_scores,
            resamples=True,
            corpus="librispeech",
            data_values=lambda root: {
                "downstream_expert.corpus.path": str(root),
                "downstream_expert.corpus.lexicon": [str(root / "lexicon.txt")],
                "downstream_expert.text.vocab_file": str(root / "phones.txt"),
            },
        ),
        *(_ser(corpus) for corpus in ("cremad", "esd", "ravdess")),
    ]
)
