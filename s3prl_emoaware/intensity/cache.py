"""On-disk cache of per-utterance intensity curves, aligned to a named feature frame grid.

Layout of ``CACHE/``::

    index.json        {"version": 3, "source": "strengthnet"|"energy"|..., "grid": {...FrameGrid...},
                       "grid_name": "fbank-25-10",
                       "model": {"source": ..., "checkpoint_sha256": ..., "config": {...}} | null,
                       "items": {utt_id: {"file": "arrays/<utt_id>.npy", "num_frames": N, "audio": path,
                                          "audio_hash": "<blake2b-128 of the decoded samples>",
                                          "audio_size": bytes, "audio_mtime_ns": ns,
                                          "curve_hash": "<blake2b-128 of the stored curve>"}},
                       "failed": {utt_id: "reason"}}
    arrays/<utt_id>.npy   float32 (N,) in [0, 1], N = the grid's frame count for that clip

**What an entry is keyed by.** The content of its audio and the model that made it:

- audio: :func:`audio_hash`, a hash of the *decoded float32 samples* (not of the file's bytes),
  so it does not depend on the container or the path, and a reader that has decoded the clip
  anyway (pre-training does) checks it for the price of one hash, without reading the file
  again. Corpora share utterance ids (the labelled and the pre-training IEMOCAP-layout corpora
  both have ``Ses01F_impro01_F000``) and a clip of the same length has the same frame count,
  so ``IntensityCache.get(utt_id, wav)`` compares the hash of the caller's audio with the
  recorded one and raises :class:`IntensityMismatchError` naming the utterance and both files
  when they differ. Resuming an extraction uses a fast path: an entry whose file still has the
  recorded path, size and modification time is trusted without decoding it; one whose file
  changed is decoded and hashed, and recomputed when the samples differ (stale). An entry for
  the same id from another path (another corpus) is refused in one line.
- model: the index's ``model`` (:func:`model_identity`: the SHA-256 of the StrengthNet
  checkpoint's bytes and its config, or the model-free source). Resuming with another model,
  source or grid is refused in one line naming both (mixing two models' curves in one cache
  would make it lie); the curves of a cache written before the model identity existed
  (version 2) are recomputed.

**Entries are checked before they are served.** The array must exist, load (no pickles), have
the recorded frame count, be finite and in [0, 1], and hash to the recorded ``curve_hash``;
otherwise the reader raises :class:`CorruptIntensityError` naming the file, and a resumed
extraction recomputes the entry.

Every array is written atomically before it is entered in the index, and the index is
rewritten atomically, so a killed extraction leaves a consistent cache: re-running it
skips the finished items and does the rest. The index is rewritten after ``flush_every``
new entries and at least ``flush_seconds`` since the last rewrite (and at the end), so a
corpus of 100k clips does not rewrite a growing index 2000 times; a kill loses at most
that much work.
"""

from __future__ import annotations

import io
import json
import logging
import os
import shutil
import time
from pathlib import Path
from typing import Callable, Dict, Optional

import numpy as np

from ..utils.atomic import atomic_write_bytes, atomic_write_json
from ..utils.errors import UserFacingError
from ..utils.hashing import bytes_blake2b, file_sha256
from .alignment import FrameGrid

logger = logging.getLogger(__name__)

__all__ = [
    "IntensityCache",
    "IntensityCacheWriter",
    "MissingIntensityError",
    "IntensityMismatchError",
    "CorruptIntensityError",
    "audio_hash",
    "curve_hash",
    "model_identity",
    "discard_other_checkpoint_cache",
]

VERSION = 3  # 2: per-item audio_hash; 3: model identity, curve_hash, audio size/mtime
READABLE_VERSIONS = (2, 3)


class MissingIntensityError(UserFacingError):
    """An utterance has no intensity curve in the cache (or the cache does not exist)."""


class IntensityMismatchError(UserFacingError):
    """A cached curve was computed from other audio than the caller's (same utterance id)."""


class CorruptIntensityError(MissingIntensityError):
    """A cached curve's file is missing, unreadable, of the wrong length or damaged."""


def _blake2b(array: np.ndarray) -> str:
    return bytes_blake2b(np.ascontiguousarray(array))


def audio_hash(wav) -> str:
    """Content hash of a waveform: blake2b (128 bits) of its float32 samples."""
    return _blake2b(np.asarray(wav, dtype=np.float32))


def curve_hash(values) -> str:
    """Content hash of a stored curve (float32)."""
    return _blake2b(np.asarray(values, dtype=np.float32))


def model_identity(source: str, checkpoint: Optional[str] = None, config=None) -> dict:
    """What made a cache's curves: the source, and for a model the SHA-256 of its checkpoint file
    and its config (so a retrained or edited model never adds curves to another model's cache)."""
    identity: Dict[str, object] = {"source": source}
    if checkpoint is not None:
        identity["checkpoint_sha256"] = file_sha256(checkpoint)
        identity["checkpoint"] = str(checkpoint)
    if config is not None:
        from ..config import to_dict

        identity["config"] = to_dict(config)
    return identity


def discard_other_checkpoint_cache(root, checkpoint) -> bool:
    """For a pipeline that owns ``root`` and has just (re)trained ``checkpoint``: delete a cache whose
    curves another checkpoint made (or whose index cannot say), so the stage rebuilds it instead of the
    writer refusing to mix models. A cache of this very checkpoint is kept (partial extraction resumes).
    Returns whether anything was deleted."""
    root = Path(root)
    index = root / "index.json"
    if not root.exists():
        return False
    try:
        model = json.loads(index.read_text()).get("model") or {}
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError):
        model = {}
    if isinstance(model, dict) and model.get("checkpoint_sha256") == file_sha256(checkpoint):
        return False
    logger.warning(
        "%s: made by another StrengthNet checkpoint than %s (retrained); deleting it to rebuild", root, checkpoint
    )
    shutil.rmtree(root)
    return True


def _same_model(a: Optional[dict], b: Optional[dict]) -> bool:
    """Identities equal on what identifies a model (the checkpoint's path is only informative)."""

    def key(x):
        return None if x is None else {k: v for k, v in x.items() if k != "checkpoint"}

    return key(a) == key(b)


def _audio_stat(path: str) -> Optional[Dict[str, int]]:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return {"audio_size": st.st_size, "audio_mtime_ns": st.st_mtime_ns}


def _decode_16k(path: str) -> np.ndarray:
    from ..utils.audio import read_audio

    return read_audio(path, expected_rate=16000)


def _build_hint(root: Path) -> str:
    return f"build it with `s3prl-emoaware intensity --corpus CORPUS --out {root}`"


def _repair_hint(root: Path) -> str:
    return f"re-run `s3prl-emoaware intensity --corpus CORPUS --out {root}` (it recomputes bad entries)"


def _read_index(index: Path, error: Callable[[str], Exception]) -> dict:
    try:
        data = json.loads(index.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise error(
            f"{index}: unreadable cache index ({' '.join(str(err).split())}); "
            "rebuild the cache into a new folder with `s3prl-emoaware intensity`"
        ) from None
    if (
        not isinstance(data, dict)
        or not isinstance(data.get("items"), dict)
        or "source" not in data
        or not isinstance(data.get("grid"), dict)
    ):
        raise error(
            f"{index}: not an intensity cache index (fields missing); rebuild the cache into a new "
            "folder with `s3prl-emoaware intensity`"
        )
    return data


def _curve_problem(root: Path, item: dict) -> Optional[str]:
    """What is wrong with an entry's array (None: nothing); never raises."""
    path = root / item.get("file", "")
    if not path.is_file():
        return f"{path}: curve file missing"
    try:
        values = np.load(path, allow_pickle=False)
    except Exception as err:  # truncated, overwritten, not a .npy
        return f"{path}: unreadable curve ({' '.join(str(err).split())[:120]})"
    return _values_problem(path, values, item)


def _values_problem(path: Path, values: np.ndarray, item: dict) -> Optional[str]:
    if values.shape != (item.get("num_frames"),):
        return f"{path}: expected {item.get('num_frames')} frames, found shape {values.shape}"
    if (
        values.dtype != np.float32
        or not np.isfinite(values).all()
        or values.min(initial=0) < 0
        or values.max(initial=0) > 1
    ):
        return f"{path}: damaged curve (not float32 values in [0, 1])"
    if "curve_hash" in item and curve_hash(values) != item["curve_hash"]:
        return f"{path}: damaged curve (content differs from the hash recorded in the index)"
    return None


class IntensityCache:
    """Read access to a cache folder."""

    def __init__(self, root):
        self.root = Path(root)
        index = self.root / "index.json"
        if not index.is_file():
            raise MissingIntensityError(
                f"{self.root}: no intensity cache here (missing index.json); " + _build_hint(self.root)
            )
        data = _read_index(index, MissingIntensityError)
        if data.get("version") not in READABLE_VERSIONS:
            raise MissingIntensityError(
                f"{index}: unsupported cache version {data.get('version')!r} (this "
                f"package writes version {VERSION}, with audio hashes); rebuild it into "
                "a new folder with `s3prl-emoaware intensity`"
            )
        self.version: int = data["version"]
        self.source: str = data["source"]
        self.grid = FrameGrid(**data["grid"])
        self.grid_name: Optional[str] = data.get("grid_name")
        self.model: Optional[dict] = data.get("model")
        self.items: Dict[str, dict] = data["items"]
        self.failed: Dict[str, str] = data.get("failed", {})

    def __contains__(self, utt_id: str) -> bool:
        return utt_id in self.items

    def __len__(self) -> int:
        return len(self.items)

    def get(self, utt_id: str, wav=None) -> np.ndarray:
        """The curve of ``utt_id``, checked (file present and readable, frame count, values, content
        hash: :class:`CorruptIntensityError` naming the file if not); with ``wav`` (the caller's
        decoded audio of that utterance), first check that the curve was computed from the same
        audio (:class:`IntensityMismatchError` if not)."""
        item = self.items.get(utt_id)
        if item is None:
            reason = f" (extraction failed: {self.failed[utt_id]})" if utt_id in self.failed else ""
            raise MissingIntensityError(
                f"utterance {utt_id!r} has no intensity curve in {self.root}{reason}; " + _build_hint(self.root)
            )
        if wav is not None:
            self.check_audio(utt_id, wav)
        path = self.root / item["file"]
        try:
            values = np.load(path, allow_pickle=False)
        except FileNotFoundError:
            raise CorruptIntensityError(
                f"{path}: curve file of {utt_id!r} missing; {_repair_hint(self.root)}"
            ) from None
        except Exception as err:
            raise CorruptIntensityError(
                f"{path}: unreadable curve of {utt_id!r} ({' '.join(str(err).split())[:120]}); "
                f"{_repair_hint(self.root)}"
            ) from None
        problem = _values_problem(path, values, item)
        if problem is not None:
            raise CorruptIntensityError(f"{problem}; {_repair_hint(self.root)}")
        return values

    def check_audio(self, utt_id: str, wav) -> None:
        """Raise :class:`IntensityMismatchError` unless ``wav`` is the audio ``utt_id``'s curve came from."""
        item = self.items[utt_id]
        if audio_hash(wav) != item["audio_hash"]:
            raise IntensityMismatchError(
                f"{self.root}: the intensity curve of utterance {utt_id!r} was computed from other audio "
                f"({item['audio']}) than the one given (content hashes differ): the file changed since the "
                f"extraction ({_repair_hint(self.root)}), or the cache belongs to another corpus that shares "
                f"utterance ids ({_build_hint(self.root)} for this corpus, in a new folder)"
            )


class IntensityCacheWriter:
    """Appends curves to a cache folder (creating or resuming it).

    ``model``: :func:`model_identity` of what computes the curves (None: not recorded, e.g. the
    oracle curves of the EMS study); resuming a cache made by another model is refused.
    ``decode``: reads an utterance's samples as extraction does (``path -> samples``; default:
    :func:`~..utils.audio.read_audio` at 16 kHz), used on resume to tell a touched file from a
    changed one.
    """

    def __init__(
        self,
        root,
        source: str,
        grid: FrameGrid,
        grid_name: Optional[str] = None,
        flush_every: int = 50,
        flush_seconds: float = 10.0,
        model: Optional[dict] = None,
        decode: Optional[Callable[[str], np.ndarray]] = None,
    ):
        self.root = Path(root)
        (self.root / "arrays").mkdir(parents=True, exist_ok=True)
        self.index_path = self.root / "index.json"
        self.model, self.decode = model, decode or _decode_16k
        self.items, self.failed = {}, {}
        if self.index_path.is_file():
            data = _read_index(self.index_path, UserFacingError)
            if data.get("version") not in READABLE_VERSIONS:
                raise UserFacingError(
                    f"{self.index_path}: cache version {data.get('version')!r}, this package "
                    f"writes {VERSION} (with audio hashes); use another --out"
                )
            if data["source"] != source or FrameGrid(**data["grid"]) != grid:
                raise UserFacingError(
                    f"{self.root}: existing cache has source {data['source']!r} and grid "
                    f"{data['grid']}; refusing to mix with {source!r} {grid.to_dict()} "
                    "(use another --out)"
                )
            if data["version"] < VERSION:
                logger.warning(
                    "%s: cache written by an older version (no model identity): its %d curves are recomputed",
                    self.root,
                    len(data["items"]),
                )
                self.failed = data.get("failed", {})
            elif not _same_model(data.get("model"), model):
                raise UserFacingError(
                    f"{self.root}: existing cache was made by {_describe(data.get('model'))}; "
                    f"refusing to add curves of {_describe(model)} (use another --out, or delete {self.root} to "
                    "rebuild it)"
                )
            else:
                self.items, self.failed = data["items"], data.get("failed", {})
        self.source, self.grid, self.grid_name = source, grid, grid_name
        self.flush_every, self.flush_seconds = flush_every, flush_seconds
        self._pending = 0
        self._flushed_at = time.monotonic()
        self.recomputed: Dict[str, str] = {}  # utt_id -> why its old entry was not kept

    def done(self, utt_id: str, audio: Optional[str] = None) -> bool:
        """Whether ``utt_id`` has a sound curve of the current audio already; an entry made from
        another file than ``audio`` (another corpus with the same ids) is an error, not a skip.
        A missing, damaged or stale entry is dropped (and recomputed by the caller)."""
        item = self.items.get(utt_id)
        if item is None:
            return False
        if audio is not None and item["audio"] != str(audio):
            raise IntensityMismatchError(
                f"{self.root}: utterance {utt_id!r} is cached from {item['audio']}, not {audio}: this cache "
                "belongs to another corpus; use another --out"
            )
        problem = _curve_problem(self.root, item) or self._stale(item)
        if problem is not None:
            logger.warning("%s; recomputing it", problem)
            self.recomputed[utt_id] = problem
            del self.items[utt_id]
            return False
        return True

    def _stale(self, item: dict) -> Optional[str]:
        """Why the entry's audio file may have changed since (None: same path, size and mtime, or
        same samples)."""
        stat = _audio_stat(item["audio"])
        if stat is None or all(item.get(k) == v for k, v in stat.items()):
            return None  # an unreadable file is reported by the extraction that decodes it
        try:
            same = audio_hash(self.decode(item["audio"])) == item["audio_hash"]
        except Exception:  # decoding errors are reported by the extraction itself
            same = False
        if same:
            item.update(stat)  # touched, not changed
            self._tick()
            return None
        return f"{item['audio']}: changed since its curve was computed"

    def add(self, utt_id: str, values: np.ndarray, audio: str, wav) -> None:
        """Record ``values`` for ``utt_id``, computed from ``wav`` (decoded from the file ``audio``)."""
        values = np.asarray(values, dtype=np.float32)
        rel = f"arrays/{utt_id}.npy"
        buffer = io.BytesIO()
        np.save(buffer, values)
        atomic_write_bytes(self.root / rel, buffer.getvalue())
        self.items[utt_id] = {
            "file": rel,
            "num_frames": int(values.shape[0]),
            "audio": str(audio),
            "audio_hash": audio_hash(wav),
            **(_audio_stat(str(audio)) or {}),
            "curve_hash": curve_hash(values),
        }
        self.failed.pop(utt_id, None)
        self._tick()

    def fail(self, utt_id: str, reason: str) -> None:
        self.failed[utt_id] = reason
        self._tick()

    def _tick(self) -> None:
        self._pending += 1
        if self._pending >= self.flush_every and time.monotonic() - self._flushed_at >= self.flush_seconds:
            self.flush()

    def flush(self) -> None:
        atomic_write_json(
            self.index_path,
            {
                "version": VERSION,
                "source": self.source,
                "grid": self.grid.to_dict(),
                "grid_name": self.grid_name,
                "model": self.model,
                "items": dict(sorted(self.items.items())),
                "failed": dict(sorted(self.failed.items())),
            },
        )
        self._pending = 0
        self._flushed_at = time.monotonic()


def _describe(model: Optional[dict]) -> str:
    if model is None:
        return "an unrecorded model"
    if "checkpoint_sha256" in model:
        return f"{model.get('checkpoint', 'a checkpoint')} (sha256 {model['checkpoint_sha256'][:12]})"
    return f"source {model.get('source')!r}"
