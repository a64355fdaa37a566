"""Hidden-state cache for frozen upstreams under the stock s3prl runner.

SUPERB judges a frozen upstream, yet the stock runner recomputes its hidden states for
every utterance at every step, evaluation and fold. While the upstream is frozen (no
``-f``) they are a pure function of (upstream, checkpoint, config, audio), so they are
computed once, stored, and read back afterwards. The runner, the featurizer and the
downstream stay s3prl's: only ``runner.upstream.model`` is wrapped, in-process, by
patching ``Runner._get_upstream`` for the duration of one runner call
(:func:`hidden_cache_installed`).

**Key.** ``DIR/<upstream key>/<audio key>.pt``. The upstream key hashes the upstream name,
the SHA-256 of the checkpoint file's bytes, of the loaded weights and buffers, the front-end
settings, the ``-g`` config (file bytes, or the string), the selected layers, the storage
dtype, the featurizer's feature key and the versions of this package, s3prl and the cache
format; the audio key hashes the samples the runner hands the upstream (float32 bytes and
length). A changed checkpoint or audio file therefore misses; nothing is keyed by path or
mtime. ``meta.json`` beside the entries says in words what the upstream key covers.

**Entry.** The hidden states the featurizer may weigh, stacked ``(layers, frames, dim)``,
fp16 by default, only the ``round(samples / downsample_rate)`` frames the featurizer keeps;
plus the upstream's own frame count for this utterance alone, its sample count and a blake2b
digest of the stored states. Written to a temporary file then renamed; a size limit is checked
before the rename, so a full cache is one :class:`HiddenCacheFull` line and never a
half-written entry.

**An entry is never served unchecked.** On a hit the entry must load (weights only), have the
fields above, the sample count of the audio asked for, the frame count the featurizer keeps
for it, the layer count and width of the batch's other entries, the storage dtype, and
states whose digest is the stored one (a flipped byte inside a tensor loads without error:
the digest is what catches it). An entry that fails any check (truncated, overwritten,
damaged, copied under another name) is logged in one line, deleted and recomputed. An entry
without a digest (written before digests were added) is one too: it is recomputed and rewritten
with one, never served (the first such entry is logged, the others only counted).

**Equality with the uncached run.** The stock runner pads a batch; the featurizer then keeps
``round(samples / rate)`` frames per utterance, which for a shorter one includes a few frames
the upstream computed on padding (none exist for the batch's longest). Our upstreams are batch
invariant (``upstreams/frames.py``): each utterance's rows depend on it alone and are zero
beyond its own frame count ``num_frames(samples)``. So a miss is computed with the batch's
other misses, its real frames are stored, and a hit batch is zero-padded to the longest
utterance's frame count, as the stock batch is: the featurizer gets the same tensors (float
tolerance, plus the fp16 rounding). An upstream without ``batch_invariant`` (s3prl's own) is
computed one utterance at a time; there the stock path's values on padding frames, and for
convolutional models its last real frames, depend on the batch, and the cached ones do not.

Returned values are always the stored (dtype-rounded) ones, on a miss too, so a run
gives the same result whether the cache was cold or warm.

**Any feature the runner selects.** ``-s KEY`` picks what the featurizer reads of the
upstream's output dict (``hidden_states`` by default; ``utterance_embedding`` for our ECAPA
encoders, a (B, T, D) tensor). The cache stores whatever that key holds, a list of (B, T, D)
tensors or one such tensor (stored as one layer), and the key is part of the upstream key, so
two selections of one checkpoint never share entries. The runner's ``-l N`` picks a layer of
``hidden_states`` only: with another selection the cache is not used (a log line says so).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn

from ..utils.atomic import atomic_path, atomic_write_json
from ..utils.errors import UserFacingError
from ..utils.hashing import bytes_blake2b, file_sha256
from ..utils.lru import SizedLRU

logger = logging.getLogger(__name__)

__all__ = [
    "HiddenCacheConfig",
    "HiddenCacheFull",
    "HiddenCacheError",
    "HiddenStateStore",
    "CachedUpstream",
    "upstream_key",
    "audio_key",
    "hidden_cache_installed",
    "drop_checkpoint_entries",
    "ENV_DIR",
    "DTYPES",
]

FORMAT_VERSION = 1
ENV_DIR = "S3PRL_EMOAWARE_HIDDEN_CACHE"
DTYPES = {"float16": torch.float16, "float32": torch.float32}
_ENTRY_SUFFIX = ".pt"
_NO_DIGEST = "has no digest of its states (written before digests were added)"


class HiddenCacheError(UserFacingError):
    pass


class HiddenCacheFull(HiddenCacheError):
    """The cache folder reached its size limit; nothing was written for the entry that did not fit."""


@dataclass
class HiddenCacheConfig:
    """Args:
    dir: cache folder (shared by runs; one sub-folder per upstream key).
    limit_gb: size limit of the whole folder in GB (10^9 bytes).
    dtype: storage dtype, ``float16`` (half the disk; ~1e-3 relative rounding) or ``float32``.
    layers: indices into ``hidden_states`` to store; the featurizer then weighs only those.
        None = every layer (or only ``-l N`` when the runner selects one).
    memory_gb: entries this process has already read and checked (or computed) are kept in
        memory up to this size in GB, least recently used first out, so the later steps,
        evaluations and runs of the process (a batch's folds) skip the disk read and the checks
        (loading, digest and finiteness checks of an entry cost more than the downstream step
        that reads it); 0 turns it off.
    """

    dir: str
    limit_gb: float = 20.0
    dtype: str = "float16"
    layers: Optional[List[int]] = None
    memory_gb: float = 2.0

    def __post_init__(self):
        if not isinstance(self.dir, str) or not self.dir.strip():
            raise HiddenCacheError(f"hidden cache dir must be a folder path, got {self.dir!r}")
        if self.dtype not in DTYPES:
            raise HiddenCacheError(f"hidden cache dtype must be one of {', '.join(DTYPES)}, got {self.dtype!r}")
        if not (self.limit_gb > 0 and math.isfinite(self.limit_gb)):
            raise HiddenCacheError(f"--hidden-cache-limit-gb must be > 0, got {self.limit_gb}")
        if not (self.memory_gb >= 0 and math.isfinite(self.memory_gb)):
            raise HiddenCacheError(f"--hidden-cache-memory-gb must be >= 0, got {self.memory_gb}")
        if self.layers is not None and (not self.layers or len(set(self.layers)) != len(self.layers)):
            raise HiddenCacheError(f"--hidden-cache-layers needs distinct layer indices, got {self.layers}")

    @property
    def limit_bytes(self) -> int:
        return int(self.limit_gb * 1e9)

    @property
    def memory_bytes(self) -> int:
        return int(self.memory_gb * 1e9)

    def to_argv(self) -> List[str]:
        """The launcher flags that carry this config into the runner process."""
        argv = [
            "--hidden-cache",
            str(self.dir),
            "--hidden-cache-limit-gb",
            repr(self.limit_gb),
            "--hidden-cache-dtype",
            self.dtype,
            "--hidden-cache-memory-gb",
            repr(self.memory_gb),
        ]
        if self.layers is not None:
            argv += ["--hidden-cache-layers", ",".join(map(str, self.layers))]
        return argv


def parse_layers(text: Optional[str]) -> Optional[List[int]]:
    if text is None:
        return None
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise HiddenCacheError(f"--hidden-cache-layers takes comma-separated integers, got {text!r}") from None


def _weights_sha256(model: nn.Module) -> str:
    h = hashlib.sha256()
    for name, value in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(value.detach().to("cpu").contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def upstream_key(
    name: str,
    ckpt: Optional[str],
    model_config: Optional[str],
    config: HiddenCacheConfig,
    feature_selection: str = "hidden_states",
    layer_selection: Optional[int] = None,
    model: Optional[nn.Module] = None,
) -> Tuple[str, dict]:
    """(hex key, what it covers) for one upstream as the runner builds it.

    ``model`` (the built upstream) adds a hash of its loaded weights and its front-end
    settings, which also covers checkpoints found without ``-k`` (e.g. ``$S3PRL_EMOAWARE_HOME``)
    and a shipped front-end YAML.
    """
    import s3prl

    from .. import __version__
    from ..config import to_dict

    def content(path: Optional[str]) -> Optional[str]:
        if not path:
            return None
        p = Path(path)
        return f"sha256:{file_sha256(p)}" if p.is_file() else f"value:{path}"

    covers = {
        "format": FORMAT_VERSION,
        "upstream": name,
        "checkpoint": content(ckpt),
        "model_config": content(model_config),
        "layers": config.layers,
        "layer_selection": layer_selection,
        "feature_selection": feature_selection,
        "dtype": config.dtype,
        "s3prl_emoaware": __version__,
        "s3prl": getattr(s3prl, "__version__", "unknown"),
    }
    if model is not None:
        covers["weights"] = f"sha256:{_weights_sha256(model)}"
        frontend = getattr(getattr(model, "frontend", None), "config", None)
        covers["frontend"] = to_dict(frontend) if frontend is not None else None
    key = hashlib.sha256(json.dumps(covers, sort_keys=True).encode()).hexdigest()[:32]
    return key, {**covers, "checkpoint_path": ckpt, "model_config_path": model_config}


def audio_key(wav: Tensor) -> str:
    """Hash of the samples exactly as the runner passes them to the upstream."""
    samples = wav.detach().to("cpu", torch.float32).contiguous()
    h = hashlib.sha256(str(samples.numel()).encode())
    h.update(samples.numpy().tobytes())
    return h.hexdigest()[:40]


_PROCESS_MEMORY: Dict[str, SizedLRU] = {}


def process_memory(root: Path, memory_bytes: int) -> SizedLRU:
    """The memory tier of the cache folder ``root`` in this process, items keyed (upstream key, audio key).

    One per folder and process, shared by every store opened on it: a batch of runner steps (the
    5 folds of ``--all-folds``, train then test) builds a runner, and so a store, per step, and the
    entries the first fold read serve the others. The bound is the last one asked for (the runner
    flag's value); 0 gives a tier that holds nothing.
    """
    if memory_bytes <= 0:
        return SizedLRU(0)
    ident = str(Path(root).resolve())
    memory = _PROCESS_MEMORY.get(ident)
    if memory is None:
        memory = _PROCESS_MEMORY[ident] = SizedLRU(memory_bytes)
    else:
        memory.resize(memory_bytes)
    return memory


class _FolderUsage:
    """Bytes of entries under one cache folder, as this process knows them: scanned once, then kept
    up to date by the stores that write and delete (shared by every store of the folder)."""

    def __init__(self, root: Path):
        self.bytes = sum(p.stat().st_size for p in root.rglob(f"*{_ENTRY_SUFFIX}"))


_PROCESS_USAGE: Dict[Tuple[str, int, int, int], _FolderUsage] = {}


def folder_usage(root: Path) -> _FolderUsage:
    """The usage of cache folder ``root`` in this process. Scanning the folder costs about 35 us per
    entry (0.74 s for the 21,000 entries of a full ``ser-study``), and a batch opens a store for
    every runner step, so the scan is done once per folder and process. The folder's inode and
    mtime are part of the identity: a folder removed and made again, or given a new upstream's
    subfolder, is scanned again."""
    st = root.stat()
    ident = (str(root.resolve()), st.st_dev, st.st_ino, st.st_mtime_ns)
    usage = _PROCESS_USAGE.get(ident)
    if usage is None:
        usage = _PROCESS_USAGE[ident] = _FolderUsage(root)
    return usage


class HiddenStateStore:
    """Entries of one upstream key under ``root / key``; size accounting over the whole ``root``.

    ``memory_bytes`` > 0 keeps the entries read and checked, or written, in memory (least recently
    used out first; :func:`process_memory`: shared with the other stores this process opens on
    ``root``) and serves them from there; the entry-specific ``check`` of :meth:`get` still runs on
    every hit.
    """

    def __init__(self, root: Path, key: str, limit_bytes: int, meta: Optional[dict] = None, memory_bytes: int = 0):
        self.root, self.dir, self.limit_bytes = Path(root), Path(root) / key, limit_bytes
        self.key = key  # the upstream key: this store's part of the folder's memory tier
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise HiddenCacheError(
                f"{self.dir}: cannot create the hidden-state cache folder "
                f"({err.strerror or err}); set --hidden-cache DIR"
            ) from None
        self.memory: SizedLRU[dict] = process_memory(self.root, memory_bytes)
        # one scan per folder and process; concurrent processes sharing the folder may overshoot by what
        # the others add meanwhile
        self._usage = folder_usage(self.root)
        if meta is not None and not (self.dir / "meta.json").is_file():
            atomic_write_json(self.dir / "meta.json", meta)
        self.hits = self.misses = self.repaired = 0
        self._old_logged = False  # an entry without a digest was logged (a cache from before digests has many)

    @property
    def used_bytes(self) -> int:
        return self._usage.bytes

    @used_bytes.setter
    def used_bytes(self, value: int) -> None:
        self._usage.bytes = value

    def path(self, key: str) -> Path:
        return self.dir / key[:2] / f"{key}{_ENTRY_SUFFIX}"

    def get(self, key: str, check=None) -> Optional[dict]:
        """The entry of ``key``, or None when there is none or it fails a check (then it is deleted,
        with one log line, and the caller recomputes it). ``check(entry)`` returns what is wrong
        with an entry that loaded, or None."""
        path = self.path(key)
        entry = self.memory.get((self.key, key))
        if entry is not None:
            # never outlives its file: an entry deleted (or a folder emptied) since is computed again
            if path.is_file() and (check is None or check(entry) is None):
                self.hits += 1
                return entry
            self.memory.pop((self.key, key))  # the disk copy (if any) fails the same check below and is replaced
        if not path.is_file():
            return None
        try:
            entry = torch.load(path, map_location="cpu", weights_only=True)
            problem = _entry_problem(entry) or (check(entry) if check is not None else None)
        except Exception as err:  # an entry is renamed into place whole, so this is outside damage
            problem = f"unreadable ({' '.join(str(err).split())[:200]})"
        if problem is not None:
            if problem != _NO_DIGEST or not self._old_logged:
                more = "; further entries without a digest are replaced unlogged" if problem == _NO_DIGEST else ""
                logger.warning("%s: hidden-state cache entry %s; deleted, it is recomputed%s", path, problem, more)
                self._old_logged = self._old_logged or problem == _NO_DIGEST
            self.discard(path)
            return None
        self.hits += 1
        self._remember(key, entry)
        return entry

    def _remember(self, key: str, entry: dict) -> None:
        self.memory.put((self.key, key), entry, entry["states"].numel() * entry["states"].element_size())

    def discard(self, path: Path) -> None:
        try:
            size = path.stat().st_size
            path.unlink()
            self.used_bytes = max(0, self.used_bytes - size)
            self.repaired += 1
        except FileNotFoundError:  # another run sharing the folder removed it first
            pass

    def put(self, key: str, entry: dict) -> None:
        target = self.path(key)
        with atomic_path(target) as tmp:
            torch.save(entry, tmp)
            size = tmp.stat().st_size
            if self.used_bytes + size > self.limit_bytes:
                # atomic_path removes the temporary file: nothing half-written stays behind
                raise HiddenCacheFull(
                    f"hidden-state cache {self.root} reached its limit of {self.limit_bytes / 1e9:g} GB "
                    f"({self.used_bytes / 1e9:.3g} GB used); raise --hidden-cache-limit-gb, point --hidden-cache "
                    "to a larger disk, or run with --no-hidden-cache"
                )
        self.used_bytes += size
        self.misses += 1
        self._remember(key, entry)


def states_digest(states: Tensor) -> str:
    """blake2b (128 bits) of a stored states tensor's bytes."""
    return bytes_blake2b(states.detach().to("cpu").contiguous().view(-1).view(torch.uint8).numpy())


def _entry_problem(entry) -> Optional[str]:
    """What is wrong with a loaded entry on its own (None: nothing)."""
    if not isinstance(entry, dict) or not {"states", "native", "n_samples"} <= set(entry):
        return "is not an entry of this cache (fields missing)"
    states = entry["states"]
    if not isinstance(states, Tensor) or states.dim() != 3:
        return "has no (layers, frames, dim) states tensor"
    if not isinstance(entry["native"], int) or not isinstance(entry["n_samples"], int):
        return "has non-integer frame or sample counts"
    if states.shape[1] > entry["native"]:
        return f"has {states.shape[1]} frames, more than its upstream frame count {entry['native']}"
    digest = entry.get("digest")
    if digest is None:
        return _NO_DIGEST
    if digest != states_digest(states):
        return "is damaged (its states do not match their digest)"
    if not torch.isfinite(states).all():
        return "holds NaN or Inf states"
    return None


def _stack_states(out: dict, where: str, feature: str = "hidden_states") -> List[Tensor]:
    """What the featurizer would read of ``out`` (``out[feature]``) as a list of (B, T, D) tensors."""
    states = out.get(feature) if isinstance(out, dict) else None
    if isinstance(states, Tensor):
        states = [states]
    if (
        not isinstance(states, (list, tuple))
        or not states
        or not all(isinstance(s, Tensor) and s.dim() == 3 for s in states)
    ):
        raise HiddenCacheError(
            f"{where}: the hidden-state cache needs {feature!r} as (B, T, D) tensors (or a list of them); "
            "run with --no-hidden-cache"
        )
    return list(states)


class CachedUpstream(nn.Module):
    """A frozen upstream whose ``forward(wavs)`` reads and fills a :class:`HiddenStateStore`.

    Args:
        upstream: the expert the runner built (eval mode, frozen).
        store: where entries live.
        rate: the featurizer's downsample rate (``upstream.get_downsample_rates(feature_selection)``).
        layers: indices of ``hidden_states`` to store and return (None = all).
        dtype: storage dtype.
        feature: the output key the featurizer reads (the runner's ``-s``); it is what is stored,
            and what ``forward`` returns under the same key.
    """

    def __init__(
        self,
        upstream: nn.Module,
        store: HiddenStateStore,
        rate: int,
        layers: Optional[Sequence[int]] = None,
        dtype: torch.dtype = torch.float16,
        name: str = "upstream",
        feature: str = "hidden_states",
    ):
        super().__init__()
        self.upstream, self.store, self.rate, self.name = upstream, store, int(rate), name
        self.feature = feature
        self.layers, self.dtype = (list(layers) if layers is not None else None), dtype
        self._shape: Optional[Tuple[int, int]] = None  # (layers, dim) of the entries: all alike
        self.batch_invariant = bool(getattr(upstream, "batch_invariant", False)) and hasattr(upstream, "num_frames")
        if not self.batch_invariant:
            logger.warning(
                "hidden-state cache: upstream %s does not declare batch_invariant/num_frames; misses are "
                "computed one utterance at a time, so padding-dependent frames of the uncached batch "
                "differ here",
                name,
            )

    def get_downsample_rates(self, key: str) -> int:
        return self.upstream.get_downsample_rates(key)

    def _select(self, states: List[Tensor]) -> List[Tensor]:
        if self.layers is None:
            return states
        try:
            return [states[i] for i in self.layers]
        except IndexError:
            raise HiddenCacheError(
                f"--hidden-cache-layers {self.layers}: upstream {self.name} has only "
                f"{len(states)} hidden states (0..{len(states) - 1})"
            ) from None

    def _entry(self, states: List[Tensor], row: int, native: int, n_samples: int) -> dict:
        # only what the featurizer keeps of this utterance's own frames; beyond them the batch is zeros
        n = min(native, round(n_samples / self.rate))
        stored = torch.stack([s[row, :n] for s in states]).to("cpu", self.dtype).contiguous()
        return {"states": stored, "native": native, "n_samples": n_samples, "digest": states_digest(stored)}

    def _checker(self, n_samples: int, shape: Optional[Tuple[int, int]]):
        """What a hit for audio of ``n_samples`` must satisfy beyond :func:`_entry_problem`."""

        def check(entry: dict) -> Optional[str]:
            states = entry["states"]
            if entry["n_samples"] != n_samples:
                return f"was made from {entry['n_samples']} samples, not the {n_samples} asked for"
            if states.dtype != self.dtype:
                return f"is stored as {states.dtype}, not {self.dtype}"
            if states.shape[1] != min(entry["native"], round(n_samples / self.rate)):
                return f"has {states.shape[1]} frames, not the {round(n_samples / self.rate)} kept for this audio"
            if shape is not None and (states.shape[0], states.shape[2]) != shape:
                return f"has {states.shape[0]} layers of width {states.shape[2]}, not {shape[0]} of {shape[1]}"
            return None

        return check

    def _compute(self, wavs: List[Tensor]) -> List[dict]:
        """Entries for ``wavs`` (the misses of a batch), each independent of what else is in it."""
        if self.batch_invariant:
            states = self._select(_stack_states(self.upstream(wavs), self.name, self.feature))
            return [self._entry(states, i, int(self.upstream.num_frames(len(w))), len(w)) for i, w in enumerate(wavs)]
        entries = []
        for w in wavs:
            states = self._select(_stack_states(self.upstream([w]), self.name, self.feature))
            entries.append(self._entry(states, 0, states[0].shape[1], len(w)))
        return entries

    def forward(self, wavs: List[Tensor]) -> Dict[str, object]:
        keys = [audio_key(w) for w in wavs]
        entries: List[Optional[dict]] = []
        for k, w in zip(keys, wavs):
            entry = self.store.get(k, self._checker(len(w), self._shape))
            if entry is not None and self._shape is None:
                self._shape = (entry["states"].shape[0], entry["states"].shape[2])
            entries.append(entry)
        first = {k: i for i, k in reversed(list(enumerate(keys)))}  # the same audio twice is computed once
        missing = [i for i, e in enumerate(entries) if e is None and first[keys[i]] == i]
        if missing:
            for i, entry in zip(missing, self._compute([wavs[i] for i in missing])):
                self._shape = (entry["states"].shape[0], entry["states"].shape[2])
                self.store.put(keys[i], entry)
                entries[i] = entry
            entries = [entries[first[k]] if e is None else e for k, e in zip(keys, entries)]
        device = wavs[0].device
        # as long as the stock batch: its longest utterance's own frame count (the featurizer cuts each row)
        t = max(e["native"] for e in entries)
        padded = torch.zeros(len(entries), *entries[0]["states"].shape[:1], t, entries[0]["states"].shape[-1])
        for row, e in enumerate(entries):
            padded[row, :, : e["states"].shape[1]] = e["states"].float()
        layers = list(padded.to(device).transpose(0, 1).unbind(0))
        if self.feature != "hidden_states":  # the featurizer reads only its own key
            return {self.feature: layers[0] if len(layers) == 1 else layers}
        return {"hidden_states": layers, "last_hidden_state": layers[-1]}


def _wrap_entry(entry, args, config: HiddenCacheConfig, stores: List[HiddenStateStore]):
    """Wrap the runner's upstream entry when frozen; leave it alone (with a log line) otherwise."""
    if getattr(args, "upstream_trainable", False):
        logger.info("hidden-state cache not used: the upstream is fine-tuned (-f)")
        return entry
    selection = getattr(args, "upstream_feature_selection", "hidden_states")
    layer_selection = getattr(args, "upstream_layer_selection", None)
    if selection != "hidden_states" and (layer_selection is not None or config.layers is not None):
        logger.warning(
            "hidden-state cache not used: -s %s with a layer selection (layers index 'hidden_states' only)", selection
        )
        return entry
    layers = config.layers
    if layer_selection is not None:
        if layers is not None:
            raise HiddenCacheError("use either the runner's -l or --hidden-cache-layers, not both")
        layers = [layer_selection]  # the featurizer would take only this one; store only it
    key, meta = upstream_key(
        args.upstream, args.upstream_ckpt, args.upstream_model_config, config, selection, layer_selection, entry.model
    )
    store = HiddenStateStore(Path(config.dir), key, config.limit_bytes, meta, memory_bytes=config.memory_bytes)
    stores.append(store)
    rate = entry.model.get_downsample_rates(selection)
    entry.model = CachedUpstream(
        entry.model, store, rate, layers, DTYPES[config.dtype], name=args.upstream, feature=selection
    )
    logger.info(
        "hidden-state cache for %s: %s (%s, limit %g GB, %.3g GB in use)",
        args.upstream,
        store.dir,
        config.dtype,
        config.limit_gb,
        store.used_bytes / 1e9,
    )
    return entry


@contextlib.contextmanager
def hidden_cache_installed(config: Optional[HiddenCacheConfig]) -> Iterator[List[HiddenStateStore]]:
    """While active, every ``Runner`` built in this process gets a cached frozen upstream.

    Yields the list of stores opened so far (one per runner built), for their hit counts.
    """
    stores: List[HiddenStateStore] = []
    if config is None:
        yield stores
        return
    from s3prl.downstream import runner as runner_module

    original = runner_module.Runner._get_upstream

    def _get_upstream(self):
        return _wrap_entry(original(self), self.args, config, stores)

    runner_module.Runner._get_upstream = _get_upstream
    try:
        yield stores
    finally:
        runner_module.Runner._get_upstream = original
        for store in stores:
            logger.info(
                "hidden-state cache %s: %d hits, %d entries written (%d bad ones replaced), %.3g GB in use",
                store.dir,
                store.hits,
                store.misses,
                store.repaired,
                store.used_bytes / 1e9,
            )


def drop_checkpoint_entries(root: Path, checkpoint: Path) -> Dict[str, int]:
    """Delete every upstream folder under the cache folder ``root`` whose ``meta.json`` covers the
    checkpoint file ``checkpoint`` (by the SHA-256 of its bytes, as the upstream key does; any
    feature or layer selection, any dtype). For a study that is done with an upstream: it bounds
    the disk of a long study to the upstreams still to run. Entries are checked one by one when
    read, so a deletion cut short leaves misses, never a wrong hit. Returns ``{"folders", "bytes"}``
    freed."""
    root, freed = Path(root), {"folders": 0, "bytes": 0}
    if not root.is_dir():
        return freed
    wanted = f"sha256:{file_sha256(Path(checkpoint))}"
    for meta in sorted(root.glob("*/meta.json")):
        try:
            covers = json.loads(meta.read_text())
        except (OSError, ValueError):
            continue  # another upstream's folder being written, or foreign: not ours to judge
        if covers.get("checkpoint") != wanted:
            continue
        folder = meta.parent
        freed["bytes"] += sum(p.stat().st_size for p in folder.rglob(f"*{_ENTRY_SUFFIX}"))
        shutil.rmtree(folder, ignore_errors=True)
        freed["folders"] += 1
    return freed


def default_cache_dir(expdir: str) -> Path:
    """``$S3PRL_EMOAWARE_HIDDEN_CACHE``, else ``hidden_cache/`` beside the experiment folder
    (in its parent), so the runs of one results folder share it."""
    env = os.environ.get(ENV_DIR)
    return Path(env) if env else Path(expdir).resolve().parent / "hidden_cache"
