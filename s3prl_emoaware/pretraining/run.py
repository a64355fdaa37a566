"""One call from a recipe and a corpus to a pre-trained checkpoint (the ``pretrain`` subcommand)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import List, Optional, Tuple

from ..corpora.reader import read_corpus
from ..features import FbankFrontend
from ..utils.errors import UserFacingError
from .data import load_items
from .tasks import build_task
from .trainer import PretrainRecipe, Trainer

logger = logging.getLogger(__name__)

__all__ = ["pretrain"]


def pretrain(recipe: PretrainRecipe, corpus, out, intensity: Optional[str] = None, resume: bool = False,
             device: str = "cpu", stop_at: Optional[int] = None) -> Tuple[Trainer, List[Tuple[int, float]]]:
    frontend = FbankFrontend(recipe.frontend)
    task = build_task(recipe.kind, recipe.model, recipe.masking, recipe.frontend.feature_dim, recipe.objective)
    cache = None
    if task.needs_intensity:
        if intensity is None:
            raise UserFacingError(f"masking strategy {recipe.masking.strategy!r} needs intensities: pass "
                                  "--intensity CACHE (build it with `s3prl-emoaware intensity`), or use --masking random")
        from ..intensity.cache import IntensityCache

        cache = IntensityCache(intensity)
        if cache.grid.hop != recipe.frontend.hop_samples or cache.grid.window != recipe.frontend.window_samples:
            raise UserFacingError(f"{intensity}: cache grid {cache.grid.to_dict()} does not match the front-end "
                                  f"({recipe.frontend.frame_length_ms} ms / {recipe.frontend.frame_shift_ms} ms)")
    items = load_items(read_corpus(corpus), frontend, cache, recipe.training.max_frames)
    trainer = Trainer(task, items, recipe, out, device)
    if resume and (Path(out) / "last.ckpt").is_file():
        trainer.resume(Path(out) / "last.ckpt")
    history = trainer.train(stop_at)
    return trainer, history
