"""Reading and writing checkpoint files: the one place that calls ``torch.load``.

Every file is loaded with ``weights_only=True`` (tensors, plain containers and an allow-list
of harmless types; a pickle that names any other global is refused before anything of it
runs), then identified by its content (:func:`kind_of`) and checked against the kinds the
caller can use. Each problem is one :class:`CheckpointError` line naming the file, the kind
expected and what was found.

Kinds:

- ``mockingjay``, ``npc``, ``ecapa_speaker``, ``ecapa_contrastive``: our pre-training states
  ``{"format": "s3prl_emoaware", "kind", "model", "optimizer", "scheduler", "step", "config"}``
  (:func:`training_state`);
- ``strengthnet``: ``{"model", "config" (StrengthNetConfig fields), "epoch", ...}``;
- ``s3prl_mockingjay``, ``s3prl_npc``: s3prl's formats (also what ``export`` writes);
- ``speechbrain_ecapa``: a SpeechBrain ``ECAPA_TDNN`` state dict (``embedding_model.ckpt``).
"""

from __future__ import annotations

import argparse
import pickle
import re
import warnings
from pathlib import Path
from typing import Any, Dict, Iterable, Mapping, Sequence, Union

import torch
from torch import Tensor, nn

from ..utils.atomic import atomic_torch_save
from ..utils.errors import UserFacingError
from .s3prl_mockingjay import is_s3prl_mockingjay
from .s3prl_npc import is_s3prl_npc

__all__ = [
    "CheckpointError",
    "FORMAT",
    "PRETRAINING_KINDS",
    "kind_of",
    "read_checkpoint",
    "require",
    "encoder_state",
    "load_weights",
    "training_state",
    "save_checkpoint",
]

FORMAT = "s3prl_emoaware"
PRETRAINING_KINDS = ("mockingjay", "npc", "ecapa_speaker", "ecapa_contrastive")
ENCODER_PREFIX = "encoder."

PathLike = Union[str, Path]


class CheckpointError(UserFacingError):
    """A checkpoint file that cannot be used where it was given (one line: file, expected, found)."""


def _one_line(err: BaseException) -> str:
    """The first sentence of an error, on one line."""
    text = " ".join(str(err).split())
    text = text.split(". ")[0].rstrip(".")
    return text if len(text) < 160 else text[:157] + "..."


def _fail(path, expected: Sequence[str], found: str, detail: str = "") -> CheckpointError:
    want = " or ".join(expected)
    return CheckpointError(
        f"{path}: expected checkpoint kind {want}, found {found}" + (f" ({detail})" if detail else "")
    )


def kind_of(obj: Any) -> str:
    """What a loaded checkpoint is (see the module docstring), or a description of what it is not."""
    if not isinstance(obj, Mapping):
        return f"a {type(obj).__name__}, not a checkpoint dict"
    if obj.get("format") == FORMAT:
        return str(obj.get("kind"))
    try:
        if is_s3prl_mockingjay(obj):
            return "s3prl_mockingjay"
        if is_s3prl_npc(obj):
            return "s3prl_npc"
    except AttributeError:  # a "config" entry that is not a mapping
        pass
    if "blocks.0.conv.conv.weight" in obj:
        return "speechbrain_ecapa"
    config = obj.get("config")
    if "model" in obj and isinstance(config, Mapping) and {"n_mels", "dense_dim"} & set(config):
        return "strengthnet"
    keys = ", ".join(sorted(map(str, obj))[:5]) or "none"
    return f"an unknown dict (keys: {keys})"


def _weights_only_refusal(err: BaseException) -> str:
    """What a weights-only load refused, from torch's message ('' if it was not that)."""
    text = str(err)
    if "Weights only load failed" not in text:
        return ""
    m = re.search(r"Unsupported global: (GLOBAL [\w.]+)", text) or re.search(r"(Unsupported [^\n.]+)", text)
    return m.group(1).strip() if m else "a disallowed object"


def read_checkpoint(path: PathLike, expected: Sequence[str], missing_hint: str = "") -> Dict[str, Any]:
    """Load ``path`` safely and check it is one of the ``expected`` kinds; return the dict.
    ``missing_hint``: how to make one, added to the message when the file does not exist.

    Never unpickles code: ``weights_only=True`` with ``argparse.Namespace`` (what s3prl's own
    checkpoints pickle) as the only extra type allowed.
    """
    path = Path(path)
    if not path.exists():
        raise _fail(path, expected, "no such file", missing_hint)
    if path.is_dir():
        raise _fail(path, expected, "a directory")
    if path.stat().st_size == 0:
        raise _fail(path, expected, "an empty file (0 bytes)")
    with open(path, "rb") as f:
        head = f.read(4)
    if not head.startswith((b"PK\x03\x04", b"\x80")):  # torch's zip format, or a (legacy) pickle
        raise _fail(path, expected, "a file that is not a torch checkpoint", f"it starts with {head!r}")
    try:
        # leaving safe_globals removes what it added: never add (then remove) the Namespace that the
        # s3prl compatibility layer made safe for the runner's own torch.load calls
        extra = [] if argparse.Namespace in torch.serialization.get_safe_globals() else [argparse.Namespace]
        with torch.serialization.safe_globals(extra), warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "pickle protocol 4": the load fails or is checked below
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        refused = _weights_only_refusal(err)
        if refused.startswith("GLOBAL"):
            raise _fail(
                path,
                expected,
                f"a pickle that carries code or objects ({refused})",
                "refused, never run; re-save weights you trust as plain tensors and dicts",
            ) from None
        if refused:
            raise _fail(
                path, expected, f"a pickle that weights-only loading refuses ({refused})", "never run"
            ) from None
        raise _fail(path, expected, "a file that is not a torch checkpoint", _one_line(err)) from None
    except (RuntimeError, EOFError, OSError, ValueError, TypeError, AttributeError, IndexError, KeyError) as err:
        if "zip" in str(err).lower() or isinstance(err, EOFError):
            raise _fail(path, expected, "a truncated or corrupt torch file", _one_line(err)) from None
        raise _fail(path, expected, "a file torch cannot read", _one_line(err)) from None
    kind = kind_of(obj)
    if kind not in expected:
        ours = isinstance(obj, Mapping) and obj.get("format") == FORMAT  # any kind we write, e.g. a training state
        raise _fail(path, expected, f"kind {kind}" if kind in _KNOWN or ours else kind)
    return obj


_KNOWN = (*PRETRAINING_KINDS, "strengthnet", "s3prl_mockingjay", "s3prl_npc", "speechbrain_ecapa")


def require(ckpt: Mapping, keys: Iterable[str], path: PathLike, kind: str) -> None:
    """Each of ``keys`` (``a.b`` for nested mappings) is present, else one line naming the first missing."""
    for key in keys:
        node: Any = ckpt
        for part in key.split("."):
            if not isinstance(node, Mapping) or part not in node:
                raise CheckpointError(f"{path}: expected checkpoint kind {kind}, found one without key {key!r}")
            node = node[part]


def encoder_state(state: Mapping[str, Tensor]) -> Dict[str, Tensor]:
    """The ``encoder.``-prefixed entries of a model's state dict, prefix removed (the upstream's weights)."""
    return {k[len(ENCODER_PREFIX) :]: v for k, v in state.items() if k.startswith(ENCODER_PREFIX)}


def _shape(value: Any) -> str:
    return str(tuple(value.shape)) if isinstance(value, Tensor) else type(value).__name__


def load_weights(module: nn.Module, state: Any, path: PathLike, kind: str) -> None:
    """``module.load_state_dict(state, strict=True)``, with any mismatch as one line: the missing
    and unexpected keys and the tensors whose shape disagrees with the config."""
    if not isinstance(state, Mapping):
        raise CheckpointError(
            f"{path}: expected checkpoint kind {kind} with weights (a state dict), found {type(state).__name__}"
        )
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    wrong = [
        f"{k} {_shape(state[k])} in the file, {tuple(own[k].shape)} by its config"
        for k in own
        if k in state and (not isinstance(state[k], Tensor) or state[k].shape != own[k].shape)
    ]
    problems = []
    if missing:
        problems.append(f"missing {len(missing)} key(s) ({', '.join(missing[:3])})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected key(s) ({', '.join(unexpected[:3])})")
    if wrong:
        problems.append(f"{len(wrong)} wrong-shaped tensor(s) ({'; '.join(wrong[:2])})")
    if problems:
        raise CheckpointError(
            f"{path}: expected checkpoint kind {kind} with weights matching its config, found " + ", ".join(problems)
        )
    module.load_state_dict(state, strict=True)


def training_state(kind: str, model: nn.Module, optimizer, scheduler, step: int, config: dict) -> dict:
    """A pre-training checkpoint dict (plain tensors and dicts only)."""
    return {
        "format": FORMAT,
        "kind": kind,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "step": step,
        "config": config,
    }


def save_checkpoint(state: Mapping, path: PathLike) -> Path:
    """Write ``state`` atomically (temp file, then rename)."""
    atomic_torch_save(state, path)
    return Path(path)
