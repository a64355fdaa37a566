"""``s3prl-emoaware intensity``: per-utterance intensity curves for a whole corpus, into a cache.

StrengthNet inference over length-sorted batches (lengths from the audio headers, so padding
is small; at most ``batch_size`` clips and :data:`FRAME_BUDGET` padded frames a batch) through
:meth:`~.strengthnet.StrengthNet.frame_strength` (no emotion branch, no autograd,
channels-last convolutions fused with their ReLU; ``precision="bf16"`` for bfloat16 on CPUs that
have it); audio decoding in worker threads, one batch ahead of the model, and the mel features
of the whole batch in the main thread just before it (the energy proxy of :mod:`.acoustic`, with
``source="energy"`` and no model, in the worker threads).
Each curve is aligned to the named feature grid (exactly the frame count the SSL front-end
gives that clip) and written to an :class:`~.cache.IntensityCacheWriter` by a thread of its own
while the model computes the next batch: atomically, resumable, bad files skipped and reported
in the index's ``failed`` map.

``reference=True`` computes the curves with the model's training ``forward`` instead (autograd
masks, both branches, the original layout; since 46b5964 its BiLSTMs run unpacked too): the path
the fast one is tested and benchmarked against (same curves within 1e-5).
"""

from __future__ import annotations

import logging
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch

from ..corpora.reader import Utterance, read_corpus
from ..models.strengthnet import PRECISIONS
from ..utils.audio import DEFAULT_MAX_BAD_FRACTION, AudioError, AudioReport, audio_info, read_audio
from ..utils.errors import UserFacingError
from ..utils.locks import locks_folder
from ..utils.processes import torch_threads
from .acoustic import energy_intensity
from .alignment import FBANK_GRID, GRIDS, STRENGTHNET_GRID, align_curve
from .cache import IntensityCacheWriter, model_identity

logger = logging.getLogger(__name__)

__all__ = ["extract_intensities", "SOURCES", "FRAME_BUDGET"]

SOURCES = ("strengthnet", "energy")
FRAME_BUDGET = 8192  # padded StrengthNet frames a batch (131 s of audio: ~140 MB per 16-channel map)
# A batch's frames are padded up to a multiple of this: oneDNN compiles its kernels for each new input
# shape (22 ms a batch of 16 clips in bf16, a quarter of its compute; 8 ms in fp32) and keeps them for shapes
# seen before, which a corpus of clips of every length rarely gives; 16 frames (0.26 s) make lengths
# recur for 4 % more frames. A clip's curve does not depend on its batch's padding.
PAD_MULTIPLE = 16

_Decoded = Tuple[Utterance, Optional[np.ndarray], Optional[object], Optional[str]]


def _num_samples(u: Utterance, report: Optional[AudioReport] = None) -> int:
    """The clip's length at 16 kHz from its header (0 when unreadable: decoding reports the error)."""
    try:
        info = audio_info(u.path)
    except AudioError:
        return 0
    if report is not None:
        report.note(info)
    return info.samples_at(16000)


def _batches(
    todo: Sequence[Utterance],
    batch_size: int,
    report: Optional[AudioReport] = None,
    pool: Optional[ThreadPoolExecutor] = None,
) -> Iterator[List[Utterance]]:
    """Length-sorted batches of at most ``batch_size`` clips and :data:`FRAME_BUDGET` padded frames (the
    headers read by ``pool``'s threads where given: 0.4 ms a file, before the first batch can start)."""
    samples = (pool.map if pool is not None else map)(lambda u: _num_samples(u, report), todo)
    lengths = {u.utt_id: STRENGTHNET_GRID.num_frames(n) for u, n in zip(todo, samples)}
    batch: List[Utterance] = []
    for u in sorted(todo, key=lambda u: lengths[u.utt_id]):
        if batch and (len(batch) >= batch_size or (len(batch) + 1) * lengths[u.utt_id] > FRAME_BUDGET):
            yield batch
            batch = []
        batch.append(u)
    if batch:
        yield batch


def _decode(u: Utterance, features, report: AudioReport) -> _Decoded:
    """(utterance, samples, ``features(samples)`` or None without ``features``, error): runs in a worker thread."""
    try:
        wav = read_audio(u.path, expected_rate=16000, min_samples=400, report=report)
    except AudioError as err:
        return u, None, None, str(err)
    if features is None:
        return u, wav, None, None
    with torch.inference_mode():
        return u, wav, features(wav), None


def _strengthnet_curves(model, mels: List[torch.Tensor], reference: bool, precision: str) -> List[np.ndarray]:
    """Frame strengths (StrengthNet grid) of one batch of (T, n_mels) spectrograms."""
    if reference:
        from .train import predict_frames

        return predict_frames(model, mels)
    lengths = torch.tensor([m.shape[0] for m in mels])
    padded = torch.nn.utils.rnn.pad_sequence(mels, batch_first=True)
    extra = -padded.shape[1] % PAD_MULTIPLE
    frames = model.frame_strength(torch.nn.functional.pad(padded, (0, 0, 0, extra)), lengths, precision)
    return [f[:n].numpy() for f, n in zip(frames, lengths.tolist())]


@locks_folder("out", "intensity cache")  # one writer per cache: a second extraction into it refuses
def extract_intensities(
    corpus,
    out,
    source: str = "strengthnet",
    model_path: Optional[str] = None,
    grid: str = "fbank-25-10",
    batch_size: int = 16,
    n_jobs: int = 2,
    utterances: Optional[Sequence[Utterance]] = None,
    stop_after: Optional[int] = None,
    threads: Optional[int] = None,
    reference: bool = False,
    max_bad_fraction: float = DEFAULT_MAX_BAD_FRACTION,
    precision: str = "fp32",
) -> Dict:
    """Fill the cache at ``out``; return counts.

    Unusable files are skipped (recorded in the index's ``failed`` map, listed at the end); more
    than ``max_bad_fraction`` of the files to do is an error, raised at the end (the good curves
    are kept). What reading the corpus does (resampled, downmixed) is one log line.

    ``n_jobs``: decoding/feature threads; ``threads``: torch's intra-op threads for the model
    (default: torch's setting, the cores available unless ``OMP_NUM_THREADS`` says otherwise);
    ``reference``: the training-forward path (see the module docstring); ``stop_after`` (tests)
    raises after that many new items; ``precision`` (``fp32`` | ``bf16``): what StrengthNet computes
    in (:meth:`~.strengthnet.StrengthNet.frame_strength`); bf16 curves are recorded as such in the
    cache's model identity, so they never mix with fp32 ones.
    """
    from tqdm import tqdm

    if source not in SOURCES:
        raise UserFacingError(f"unknown intensity source {source!r}; choose {', '.join(SOURCES)}")
    if grid not in GRIDS:
        raise UserFacingError(f"unknown grid {grid!r}; choose {', '.join(GRIDS)}")
    if batch_size < 1:
        raise UserFacingError(f"batch size must be at least 1, got {batch_size}")
    if precision not in PRECISIONS:
        raise UserFacingError(f"unknown precision {precision!r}; choose {', '.join(PRECISIONS)}")
    if precision != "fp32" and (source != "strengthnet" or reference):
        raise UserFacingError(
            f"precision {precision} is for StrengthNet's fast path (not with --source energy or reference)"
        )
    target = GRIDS[grid]
    model = None
    if source == "strengthnet":
        if model_path is None:
            raise UserFacingError(
                "--model CKPT is required with --source strengthnet "
                "(train one with `s3prl-emoaware train-strengthnet`, or use --source energy)"
            )
        from .strengthnet import MelFrontend
        from .train import load_strengthnet

        model = load_strengthnet(model_path)
        if not reference:  # oneDNN's channels-last convolutions: 1.5x faster on CPU, same values
            model.to(memory_format=torch.channels_last)
        frontend, native = MelFrontend(model.config.n_mels, model.config.log_mel), STRENGTHNET_GRID
    else:
        native = FBANK_GRID  # the energy proxy is computed on the fbank frames
    identity = model_identity(source, model_path, model.config) if model is not None else model_identity(source)
    if precision != "fp32":  # fp32 identities stay as they were, so existing caches keep resuming
        identity["precision"] = precision
        _warn_if_emulated(precision)
    writer = IntensityCacheWriter(out, source, target, grid, model=identity)
    todo = [
        u
        for u in (utterances if utterances is not None else read_corpus(corpus))
        if not writer.done(u.utt_id, str(u.path))
    ]
    new = skipped = 0
    report = AudioReport(f"{corpus} (intensity extraction)", 16000, max_bad_fraction)
    report.count(len(todo))
    bar = tqdm(total=len(todo), desc=f"intensity ({source})", unit="utt")
    pool = ThreadPoolExecutor(max(1, n_jobs))

    # With a model the threads only decode, and the mels of a batch are computed at once just before the model
    # runs: a torch op started in a worker thread opens its own OpenMP team beside the model's, and on 2 cores
    # the model's parallel regions then wait for preempted threads (the StrengthNets ran 1.4-2x slower with the
    # mel in the workers; bench/bench_intensity.py)
    in_workers = energy_intensity if model is None else None

    def submit(batch: List[Utterance]) -> List[Future]:
        return [pool.submit(_decode, u, in_workers, report) for u in batch]

    # The cache writes (alignment, hashes, file, fsync, rename: about 2 ms a clip, more than the small model
    # spends on it) run in a thread of their own while the model computes the next batch; one thread, in order,
    # so the writer's index is never touched by two threads at once.
    writes = ThreadPoolExecutor(1)
    written: List[Future] = []

    def record(failures: List[Tuple[str, str]], curves: List[Tuple[Utterance, np.ndarray, np.ndarray]]) -> None:
        for utt_id, reason in failures:
            writer.fail(utt_id, reason)
        for u, wav, curve in curves:
            aligned = align_curve(curve, native, target, target.num_frames(len(wav)))
            writer.add(u.utt_id, np.clip(aligned, 0.0, 1.0), str(u.path), wav)

    try:
        with torch_threads(threads):
            batches = _batches(todo, batch_size, report, pool)
            ahead = submit(next(batches, []))
            while ahead:
                decoded = [f.result() for f in ahead]
                ahead = submit(next(batches, []))  # decode the next batch while the model runs
                good = [item for item in decoded if item[3] is None]
                failures = [(item[0].utt_id, item[3]) for item in decoded if item[3] is not None]
                for utt_id, reason in failures:
                    report.skip(utt_id, reason)
                skipped += len(failures)
                if model is not None and good:
                    with torch.inference_mode():
                        mels = frontend.each([torch.from_numpy(wav) for _, wav, _, _ in good])
                    curves = _strengthnet_curves(model, mels, reference, precision)
                else:
                    curves = [curve for _, _, curve, _ in good]
                items = [(u, wav, curve) for (u, wav, _, _), curve in zip(good, curves)]
                if stop_after is not None:
                    items = items[: stop_after - new]
                written.append(writes.submit(record, failures, items))
                new += len(items)
                while len(written) > 1:  # one batch written while the next computes; a write error raises here
                    written.pop(0).result()
                if stop_after is not None and new >= stop_after:
                    raise KeyboardInterrupt(f"stopped after {new} items (stop_after)")
                bar.update(len(decoded))
            for f in written:
                f.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        writes.shutdown(wait=True)  # what was computed is written, also when the run stops on an error
        writer.flush()
        bar.close()
    report.finish()
    return {"new": new, "skipped": skipped, "total": len(writer.items), "failed": len(writer.failed)}


def _warn_if_emulated(precision: str) -> None:
    """bf16 pays off only where the CPU multiplies bf16 in hardware (AVX512-BF16 or AMX)."""
    from ..models.strengthnet import onednn_bf16_supported

    native = onednn_bf16_supported() and (
        getattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)()
        or getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)()
    )
    if not native:
        logger.warning(
            "precision %s: this CPU (%s) has no bf16 matrix instructions; it is emulated and slower than fp32",
            precision,
            torch.backends.cpu.get_cpu_capability(),
        )
