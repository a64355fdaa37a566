"""Compatibility layer that lets s3prl 0.4.18 import and run on the current stack.

s3prl 0.4.18 (the last release) was written against torchaudio < 2.9, huggingface_hub < 1.0
and torch < 2.6. Each shim below fixes one documented break, and each follows the same
rule: **add only what is missing, never replace working behaviour**. If the running stack
already provides the API, the shim does nothing (and reports so).

======================  ===============================================================
shim                    why (file:line in s3prl 0.4.18)
======================  ===============================================================
set_audio_backend       ``torchaudio.set_audio_backend`` was removed in torchaudio 2.9;
                        called at import by ``upstream/byol_s/byol_a/common.py:20`` and
                        at start by ``run_downstream.py:157``. Added as a no-op (it was
                        already a no-op in torchaudio 2.2-2.8).
sox_effects             ``torchaudio.sox_effects`` was removed in 2.9; imported by
                        ``upstream/mos_prediction/expert.py:9`` (through ``s3prl.hub``).
                        Added as a module whose functions raise a clear error if called.
hf_hub_legacy           ``huggingface_hub`` >= 1.0 has no ``HfFolder``/``Repository``;
                        imported by ``downstream/runner.py:27`` and
                        ``run_downstream.py:17``. Added as stand-ins that raise a clear
                        error only when the Hugging Face push/login path is used.
namespace_safe_global   torch >= 2.6 loads with ``weights_only=True`` by default and
                        refuses the ``argparse.Namespace`` the runner stores under
                        ``'Args'`` (``run_downstream.py:112,171``, ``runner.py:91``), so
                        ``-e`` (evaluate, resume) fails. ``argparse.Namespace`` is added to
                        torch's safe globals (a plain attribute bag, no code runs).
audio_load_fallback     torchaudio 2.9+ ``load`` goes through torchcodec, which needs the
                        FFmpeg shared libraries. Only where torchcodec cannot be used,
                        ``torchaudio.load`` falls back to soundfile (WAV and FLAC), so the
                        stock ``emotion``/``fluent_commands`` experts still read audio.
======================  ===============================================================
"""

from __future__ import annotations

import argparse
import logging
import sys
import types
from typing import Callable, Dict, List

logger = logging.getLogger(__name__)

__all__ = ["apply_all", "SHIMS", "CompatError"]


class CompatError(RuntimeError):
    """A feature of s3prl that cannot work on this stack was used."""


# --- set_audio_backend ---------------------------------------------------------------------


def _noop_set_audio_backend(backend=None):
    """No-op stand-in: torchaudio >= 2.9 has a single I/O path (torchcodec)."""
    return None


def shim_set_audio_backend() -> bool:
    import torchaudio

    if hasattr(torchaudio, "set_audio_backend"):
        return False
    torchaudio.set_audio_backend = _noop_set_audio_backend
    return True


# --- sox_effects ---------------------------------------------------------------------------


def _sox_unavailable(name: str) -> Callable:
    def _raise(*args, **kwargs):
        raise CompatError(
            f"torchaudio.sox_effects.{name} is not available: torchaudio >= 2.9 removed sox_effects. "
            "The s3prl task that called it (e.g. speech_commands, sv_voxceleb1, mos_prediction) "
            "needs torchaudio < 2.9; emotion, phoneme recognition and fluent_commands do not use it."
        )

    _raise.__name__ = name
    return _raise


def shim_sox_effects() -> bool:
    import torchaudio

    try:
        import torchaudio.sox_effects  # noqa: F401

        return False
    except ImportError:
        pass
    module = types.ModuleType("torchaudio.sox_effects")
    module.__doc__ = "Stand-in added by s3prl_emoaware: sox_effects was removed in torchaudio 2.9."
    for name in (
        "apply_effects_tensor",
        "apply_effects_file",
        "effect_names",
        "init_sox_effects",
        "shutdown_sox_effects",
    ):
        setattr(module, name, _sox_unavailable(name))
    sys.modules["torchaudio.sox_effects"] = module
    torchaudio.sox_effects = module
    return True


# --- huggingface_hub HfFolder / Repository -------------------------------------------------


class _HubLegacyStandIn:
    """Stand-in for an API removed in huggingface_hub 1.0; fails only when used."""

    _name = "HfFolder"

    def __init__(self, *args, **kwargs):
        self._fail()

    @classmethod
    def _fail(cls, *args, **kwargs):
        raise CompatError(
            f"huggingface_hub.{cls._name} was removed in huggingface_hub 1.0; s3prl uses it only for "
            "--push_to_hf_hub and --hub huggingface, which are not supported on this stack. "
            "Train and evaluate locally (the default --hub local)."
        )

    get_token = save_token = delete_token = _fail


def shim_hf_hub_legacy() -> bool:
    try:
        import huggingface_hub
    except ImportError:
        return False
    added = False
    for name in ("HfFolder", "Repository"):
        if not hasattr(huggingface_hub, name):
            setattr(huggingface_hub, name, type(name, (_HubLegacyStandIn,), {"_name": name}))
            added = True
    return added


# --- argparse.Namespace under weights_only --------------------------------------------------


def shim_namespace_safe_global() -> bool:
    import torch.serialization as ser

    if not hasattr(ser, "add_safe_globals"):  # torch < 2.4 has no weights_only default problem
        return False
    if argparse.Namespace in ser.get_safe_globals():
        return False
    ser.add_safe_globals([argparse.Namespace])
    return True


# --- torchaudio.load without FFmpeg ---------------------------------------------------------


def _torchcodec_usable() -> bool:
    """True when torchaudio.load can decode through torchcodec (package and FFmpeg present)."""
    try:
        from torchcodec.decoders import AudioDecoder  # noqa: F401  (loads libtorchcodec + FFmpeg)
    except Exception:  # ImportError without the package, RuntimeError without FFmpeg
        return False
    return True


def _soundfile_load(
    uri,
    frame_offset: int = 0,
    num_frames: int = -1,
    normalize: bool = True,
    channels_first: bool = True,
    format=None,
    buffer_size: int = 4096,
    backend=None,
):
    """torchaudio.load's contract ((channels, time) float32 tensor, sample rate) via soundfile."""
    import soundfile as sf
    import torch

    stop = None if num_frames is None or num_frames < 0 else frame_offset + num_frames
    data, rate = sf.read(uri, start=frame_offset, stop=stop, dtype="float32", always_2d=True)
    wav = torch.from_numpy(data)
    return (wav.t().contiguous() if channels_first else wav), rate


def shim_audio_load_fallback() -> bool:
    import torchaudio

    if _torchcodec_usable():
        return False
    if getattr(torchaudio.load, "__name__", "") == "_soundfile_load":
        return False
    torchaudio.load = _soundfile_load
    return True


SHIMS: Dict[str, Callable[[], bool]] = {
    "set_audio_backend": shim_set_audio_backend,
    "sox_effects": shim_sox_effects,
    "hf_hub_legacy": shim_hf_hub_legacy,
    "namespace_safe_global": shim_namespace_safe_global,
    "audio_load_fallback": shim_audio_load_fallback,
}

_applied: List[str] = []
_done = False


def apply_all() -> List[str]:
    """Apply every shim once; return the names of those that changed something."""
    global _done
    if _done:
        return list(_applied)
    for name, shim in SHIMS.items():
        if shim():
            _applied.append(name)
    _done = True
    if _applied:
        logger.debug("s3prl_emoaware compatibility shims applied: %s", ", ".join(_applied))
    return list(_applied)
