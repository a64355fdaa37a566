"""``s3prl-emoaware intensity``: per-utterance intensity curves for a whole corpus, into a cache.

Batched StrengthNet inference over length-sorted batches (so padding is small), audio
decoding and mel features in joblib worker threads, each curve aligned to the named
feature grid (exactly the frame count the SSL front-end gives that clip) and written to an
:class:`~.cache.IntensityCacheWriter`: atomically, resumable, bad files skipped and
reported in the index's ``failed`` map. ``source="energy"`` uses the model-free proxy of
:mod:`.acoustic` instead of StrengthNet.
"""

from __future__ import annotations

import logging
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from ..corpora.reader import Utterance, read_corpus
from ..utils.audio import AudioError, read_audio
from ..utils.errors import UserFacingError
from .acoustic import energy_intensity
from .alignment import FBANK_GRID, GRIDS, STRENGTHNET_GRID, align_curve
from .cache import IntensityCacheWriter

logger = logging.getLogger(__name__)

__all__ = ["extract_intensities", "SOURCES"]

SOURCES = ("strengthnet", "energy")


def _decode(u: Utterance):
    try:
        return u, read_audio(u.path, expected_rate=16000, min_samples=400), None
    except AudioError as err:
        return u, None, str(err)


def extract_intensities(corpus, out, source: str = "strengthnet", model_path: Optional[str] = None,
                        grid: str = "fbank-25-10", batch_size: int = 16, n_jobs: int = 2,
                        utterances: Optional[Sequence[Utterance]] = None, stop_after: Optional[int] = None) -> Dict:
    """Fill the cache at ``out``; return counts. ``stop_after`` (tests) raises after that many new items."""
    from joblib import Parallel, delayed
    from tqdm import tqdm

    if source not in SOURCES:
        raise UserFacingError(f"unknown intensity source {source!r}; choose {', '.join(SOURCES)}")
    if grid not in GRIDS:
        raise UserFacingError(f"unknown grid {grid!r}; choose {', '.join(GRIDS)}")
    target = GRIDS[grid]
    model = frontend = None
    if source == "strengthnet":
        if model_path is None:
            raise UserFacingError("--model CKPT is required with --source strengthnet "
                                  "(train one with `s3prl-emoaware train-strengthnet`, or use --source energy)")
        from .strengthnet import MelFrontend
        from .train import load_strengthnet, predict_frames

        model = load_strengthnet(model_path)
        frontend = MelFrontend(model.config.n_mels, model.config.log_mel)
    writer = IntensityCacheWriter(out, source, target, grid)
    todo = [u for u in (utterances if utterances is not None else read_corpus(corpus)) if not writer.done(u.utt_id, str(u.path))]
    # length-sorted batches: neighbours have similar lengths, so little padding work
    todo.sort(key=lambda u: u.path.stat().st_size if u.path.exists() else 0)
    new = skipped = 0
    pool = Parallel(n_jobs=n_jobs, prefer="threads")
    bar = tqdm(total=len(todo), desc=f"intensity ({source})", unit="utt")
    try:
        for start in range(0, len(todo), batch_size):
            decoded = pool(delayed(_decode)(u) for u in todo[start:start + batch_size])
            good: List[Tuple[Utterance, np.ndarray]] = []
            for u, wav, error in decoded:
                if error:
                    writer.fail(u.utt_id, error)
                    logger.warning("skipped %s", error)
                    skipped += 1
                else:
                    good.append((u, wav))
            if source == "energy":
                curves = [energy_intensity(w) for _, w in good]
                native = FBANK_GRID  # the proxy is computed on the fbank frames
            else:
                mels = pool(delayed(lambda w: frontend(torch.from_numpy(w)[None])[0])(w) for _, w in good)
                curves = predict_frames(model, mels) if mels else []
                native = STRENGTHNET_GRID
            for (u, wav), curve in zip(good, curves):
                aligned = align_curve(curve, native, target, target.num_frames(len(wav)))
                writer.add(u.utt_id, np.clip(aligned, 0.0, 1.0), str(u.path), wav)
                new += 1
                if stop_after is not None and new >= stop_after:
                    raise KeyboardInterrupt(f"stopped after {new} items (stop_after)")
            bar.update(len(decoded))
    finally:
        writer.flush()
        bar.close()
    return {"new": new, "skipped": skipped, "total": len(writer.items), "failed": len(writer.failed)}
