"""Steps that the staged jobs (``demo``, ``ems-study``, ``ser-study``) run: their config, the
generated corpora, the speaker encoder and the intra-speaker clusters, StrengthNet and the
intensities of a pre-training corpus. Each job decides which corpora and recipes; these
functions do the work the same way for all.
"""

from __future__ import annotations

from pathlib import Path
from typing import Collection, Dict, List, Optional, Sequence, Tuple, Type, TypeVar

from ..utils.errors import UserFacingError

T = TypeVar("T")

__all__ = [
    "load_job_config",
    "corpus_plan",
    "synthesize_missing",
    "train_speaker_encoder",
    "cluster_speakers",
    "recipe_needs_intensity",
    "train_shipped_strengthnet",
    "pretraining_intensities",
]


def load_job_config(cls: Type[T], filename: str, overrides: Optional[List[str]], where: str) -> T:
    """``demo/configs/<filename>`` with ``-o KEY=VALUE`` overrides, mapped onto ``cls``."""
    from ..config import load_config

    return load_config(cls, Path(__file__).resolve().parent / "configs" / filename, overrides or [], where=where)


def corpus_plan(
    paths: Dict[str, Path], seed: int, special: Dict[str, Tuple[str, int]]
) -> Dict[str, Tuple[str, Path, int]]:
    """``{name: (kind, path, seed)}`` for :func:`synthesize_missing`: each corpus is generated in
    the layout of its name with ``seed``, except those in ``special`` (``name: (kind, seed)``)."""
    plan = {}
    for name, path in paths.items():
        kind, corpus_seed = special.get(name, (name, seed))
        plan[name] = (kind, path, corpus_seed)
    return plan


def synthesize_missing(
    plan: Dict[str, Tuple[str, Path, int]], size: str, options: Optional[Dict[str, dict]] = None
) -> dict:
    """Generate each ``name: (kind, path, seed)`` corpus whose folder does not exist yet, with the
    layout options ``options[name]`` (e.g. ``{"iemocap": {"utts_per_speaker": 96}}``)."""
    from ..corpora.synth import synthesize_corpus

    summary = {}
    for name, (kind, path, seed) in plan.items():
        layout_options = (options or {}).get(name, {})
        if path.is_dir():
            _check_kept_corpus(path, kind, seed, size, layout_options)
            summary[name] = "kept"
            continue
        synthesize_corpus(kind, path, seed=seed, size=size, **layout_options)
        summary[name] = str(path)
    return summary


def _check_kept_corpus(path: Path, kind: str, seed: int, size: str, layout_options: dict) -> None:
    """A generated corpus kept from an earlier run must be the one this run asks for: a study
    re-run with another seed or size in the same folder would otherwise read the old audio."""
    from ..corpora.synth import read_marker

    made = read_marker(path)
    if made is None:
        return  # a user's own copy in the study's folder: theirs to vouch for
    wanted = {"kind": kind, "seed": seed, "size": size, "options": layout_options}
    found = {k: made.get(k) for k in ("kind", "seed", "size")}
    found["options"] = made.get("quirks", {})
    if found != wanted:
        diff = ", ".join(f"{k}: {found.get(k)!r} there, {v!r} asked" for k, v in wanted.items() if found.get(k) != v)
        raise UserFacingError(
            f"{path}: kept corpus was generated with other settings ({diff}); remove the folder or use another --out"
        )


def train_speaker_encoder(recipe_name: str, overrides: List[str], corpus: Path, out: Path, device: str = "cpu") -> dict:
    """AAM-softmax speaker encoder into ``out/speaker_encoder`` from a shipped recipe."""
    from ..config import load_config, shipped_config
    from ..pretraining.run import pretrain
    from ..pretraining.trainer import PretrainRecipe

    recipe = load_config(PretrainRecipe, shipped_config("upstream_configs", recipe_name), overrides)
    _, history = pretrain(recipe, corpus, out / "speaker_encoder", None, device=device)
    return {"steps": len(history), "last_loss": history[-1][1]}


def cluster_speakers(corpus: Path, out: Path, k: int, min_utterances: int, folder: str = "clusters") -> dict:
    """Intra-speaker clusters of ``corpus`` with ``out/speaker_encoder`` into ``out/<folder>``; the overall scores."""
    from ..contrastive.run import cluster_corpus

    result = cluster_corpus(
        corpus, out / "speaker_encoder" / "last.ckpt", out / folder, k=k, min_utterances=min_utterances
    )
    if result.report is None:
        raise ValueError(f"{corpus}: no emotion labels, so the clusters cannot be scored")
    return result.report["overall"]


def recipe_needs_intensity(recipe) -> bool:
    """Whether pre-training ``recipe`` (a PretrainRecipe) reads an intensity cache (its task says)."""
    from ..pretraining.tasks import task_needs_intensity

    return task_needs_intensity(
        recipe.kind, recipe.model, recipe.masking, recipe.frontend.feature_dim, recipe.objective
    )


def describe_intensities(cache_dir: Path, corpus: Path) -> Dict:
    """The distribution of a cache's curves over ``corpus`` (neutral vs emotional utterances) and its
    histogram PNG beside the cache (``<cache_dir>_histogram.png``): flat or uncalibrated curves show
    here before they reach the masker."""
    from ..corpora.reader import read_corpus
    from ..intensity.cache import IntensityCache
    from ..intensity.distribution import intensity_distribution, plot_intensity_histogram

    cache, utterances = IntensityCache(cache_dir), read_corpus(corpus)
    png = Path(f"{Path(cache_dir)}_histogram.png")
    plot_intensity_histogram(cache, utterances, png, title=f"{cache.source} intensities of {Path(corpus).name}")
    return {**intensity_distribution(cache, utterances), "histogram": str(png)}


def train_shipped_strengthnet(
    recipe_name: str, overrides: List[str], corpus: Path, out: Path, eval_corpora: Sequence[Path] = ()
) -> dict:
    """StrengthNet of the shipped recipe ``recipe_name`` trained on ``corpus`` into ``out``
    (``out/strengthnet.ckpt``); its metrics on the held-out speakers and on each corpus of
    ``eval_corpora`` (judged, never trained on), without the list of skipped files."""
    from ..config import load_config, shipped_config
    from ..intensity.train import StrengthNetRecipe, train_strengthnet

    recipe = load_config(StrengthNetRecipe, shipped_config("upstream_configs", recipe_name), overrides)
    metrics = train_strengthnet(corpus, out, recipe, eval_corpora=list(eval_corpora))
    return {k: v for k, v in metrics.items() if k != "skipped"}


def pretraining_intensities(
    corpus: Path,
    root: Path,
    sources: Collection[str],
    checkpoint: Optional[Path] = None,
    strengthnet_folder: str = "strengthnet",
) -> Dict[str, dict]:
    """The ``strengthnet`` (the model at ``checkpoint``, into ``root/<strengthnet_folder>``) and
    ``energy`` (``root/energy``) intensities of ``corpus``, for those of ``sources`` (others are
    ignored), each with its distribution and histogram (:func:`describe_intensities`), keyed by
    folder. A StrengthNet cache made by another checkpoint (a retrained StrengthNet) is replaced;
    one of this checkpoint resumes."""
    from ..intensity.cache import discard_other_checkpoint_cache
    from ..intensity.extract import extract_intensities

    summary = {}
    if "strengthnet" in sources:
        folder = root / strengthnet_folder
        discard_other_checkpoint_cache(folder, checkpoint)
        summary[strengthnet_folder] = extract_intensities(corpus, folder, model_path=str(checkpoint))
    if "energy" in sources:
        summary["energy"] = extract_intensities(corpus, root / "energy", source="energy")
    for source in summary:  # what feeds the masker, in figures and as a picture
        summary[source]["distribution"] = describe_intensities(root / source, corpus)
    return summary
