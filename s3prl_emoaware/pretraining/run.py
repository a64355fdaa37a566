"""One call from a recipe and a corpus to a pre-trained checkpoint (the ``pretrain`` subcommand)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import List, Optional, Tuple

from ..corpora.reader import read_corpus
from ..utils.errors import UserFacingError
from ..utils.locks import locks_folder
from .data import build_dataset
from .tasks import task_from_recipe
from .trainer import PretrainRecipe, Trainer

logger = logging.getLogger(__name__)

__all__ = ["pretrain", "check_init_compatible", "INIT_KINDS"]

# the checkpoint kinds a recipe kind may start from (objective.init_from); default: its own kind
INIT_KINDS = {"ecapa_contrastive": ("ecapa_speaker", "ecapa_contrastive")}


def check_init_compatible(recipe: PretrainRecipe, path) -> None:
    """Refuse to start from a checkpoint whose encoder or front-end differ from the recipe's.

    A model mismatch would only surface as a state-dict error, and a front-end mismatch (e.g.
    mean-only vs mean-and-variance normalisation) would go unnoticed: the encoder would be
    fed features it never saw.
    """
    from dataclasses import asdict

    from ..checkpoints import CheckpointError, read_checkpoint, require
    from ..config import from_dict
    from ..features import FbankConfig

    kinds = INIT_KINDS.get(recipe.kind, (recipe.kind,))
    try:
        ckpt = read_checkpoint(path, kinds)
    except CheckpointError as err:
        raise CheckpointError(f"{err} (objective.init_from)") from None
    require(ckpt, ("config.model", "config.frontend"), path, kinds[0])
    theirs = ckpt["config"]
    ours_frontend, their_frontend = asdict(recipe.frontend), asdict(from_dict(FbankConfig, theirs.get("frontend", {})))
    diff = [
        f"frontend.{k}: {their_frontend[k]!r} there, {v!r} here"
        for k, v in ours_frontend.items()
        if their_frontend.get(k) != v
    ]
    diff += [
        f"model.{k}: {theirs.get('model', {}).get(k)!r} there, {v!r} here"
        for k, v in (recipe.model or {}).items()
        if theirs.get("model", {}).get(k, v) != v
    ]
    if diff:
        raise UserFacingError(f"{path}: incompatible with this recipe (objective.init_from): " + "; ".join(diff))


@locks_folder("out", "pre-training output folder", rank_zero_only=True)
def pretrain(
    recipe: PretrainRecipe,
    corpus,
    out,
    intensity: Optional[str] = None,
    resume: bool = False,
    device: str = "cpu",
    stop_at: Optional[int] = None,
) -> Tuple[Trainer, List[Tuple[int, float]]]:
    task = task_from_recipe(recipe)
    cache = None
    if task.needs_intensity:
        if intensity is None:
            raise UserFacingError(
                f"masking strategy {recipe.masking.strategy!r} needs intensities: pass "
                "--intensity CACHE (build it with `s3prl-emoaware intensity`), or use --masking random"
            )
        from ..intensity.cache import IntensityCache

        cache = IntensityCache(intensity)
        if cache.grid.hop != recipe.frontend.hop_samples or cache.grid.window != recipe.frontend.window_samples:
            raise UserFacingError(
                f"{intensity}: cache grid {cache.grid.to_dict()} does not match the front-end "
                f"({recipe.frontend.frame_length_ms} ms / {recipe.frontend.frame_shift_ms} ms)"
            )
    init_from = getattr(recipe.objective_config, "init_from", None)
    if init_from:
        check_init_compatible(recipe, init_from)
    dataset = build_dataset(
        read_corpus(corpus),
        recipe.frontend,
        cache,
        recipe.training.max_frames,
        max_bad_fraction=recipe.training.max_bad_fraction,
        what=f"{corpus} (pre-training)",
    )
    trainer = Trainer(task, dataset, recipe, out, device)
    if resume and (Path(out) / "last.ckpt").is_file():
        trainer.resume(Path(out) / "last.ckpt")
    history = trainer.train(stop_at)
    return trainer, history
