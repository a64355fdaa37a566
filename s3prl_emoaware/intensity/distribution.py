"""What a cache of intensity curves looks like as a whole: is it calibrated, does it vary?

A curve can rank frames well and still be useless to EMS (a flat 0.6 everywhere scored AUC 0.98
once). :func:`intensity_distribution` gives the figures that show it at a glance, and
:func:`plot_intensity_histogram` the picture: frame values and utterance means of neutral and
emotional utterances side by side.
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, Sequence

import numpy as np

from ..utils.atomic import atomic_path
from .cache import IntensityCache

__all__ = ["intensity_distribution", "plot_intensity_histogram"]


def _curves_by_group(cache: IntensityCache, utterances: Sequence) -> Dict[str, list]:
    groups: Dict[str, list] = {"neutral": [], "emotional": []}
    for u in utterances:
        if u.utt_id in cache.items:
            groups["neutral" if (u.emotion or "neu") == "neu" else "emotional"].append(cache.get(u.utt_id))
    return groups


def intensity_distribution(cache: IntensityCache, utterances: Sequence) -> Dict:
    """Figures of the curves of ``utterances`` (those with an ``emotion`` label are grouped into
    neutral / emotional; unlabelled ones count as neutral).

    Returns: ``global_mean``, ``utterance_mean_spread`` (std of the utterance means),
    ``median_within_spread`` (median over utterances of the std inside one), ``median_range``
    (median of max - min), ``level_difference`` (emotional minus neutral utterance means) and
    the number of curves per group.
    """
    groups = _curves_by_group(cache, utterances)
    curves = groups["neutral"] + groups["emotional"]
    if not curves:
        raise ValueError(f"{cache.root}: none of the {len(utterances)} utterances has a curve")
    means = np.array([c.mean() for c in curves])
    out = {
        "n_neutral": len(groups["neutral"]),
        "n_emotional": len(groups["emotional"]),
        "global_mean": float(np.concatenate(curves).mean()),
        "utterance_mean_spread": float(means.std()),
        "median_within_spread": float(np.median([c.std() for c in curves])),
        "median_range": float(np.median([c.max() - c.min() for c in curves])),
    }
    if groups["neutral"] and groups["emotional"]:
        out["level_difference"] = float(
            np.mean([c.mean() for c in groups["emotional"]]) - np.mean([c.mean() for c in groups["neutral"]])
        )
    return out


def plot_intensity_histogram(cache: IntensityCache, utterances: Sequence, out: Path, title: str = "") -> Path:
    """PNG with two panels: frame values and utterance means, neutral vs emotional utterances."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = _curves_by_group(cache, utterances)
    bins = np.linspace(0, 1, 41)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.4))
    for name, color in (("neutral", "#1f77b4"), ("emotional", "#d62728")):
        curves = groups[name]
        if not curves:
            continue
        axes[0].hist(
            np.concatenate(curves),
            bins=bins,
            density=True,
            alpha=0.55,
            color=color,
            label=f"{name} ({len(curves)} utt.)",
        )
        axes[1].hist([c.mean() for c in curves], bins=bins, density=True, alpha=0.55, color=color, label=name)
    axes[0].set_xlabel("frame intensity")
    axes[1].set_xlabel("utterance mean intensity")
    for ax in axes:
        ax.set_xlim(0, 1)
        ax.set_ylabel("density")
        ax.legend(fontsize=8)
    fig.suptitle(title or f"intensities in {cache.root}", fontsize=10)
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return Path(out)
