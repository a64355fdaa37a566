"""Intra-speaker clustering of speaker embeddings, and how well clusters match emotions.

Speaker embeddings (ECAPA) of one speaker's utterances form emotion-related clusters (Ulgen
et al., ICASSP 2024). :func:`cluster_per_speaker` runs k-means on each speaker's
L2-normalised embeddings (K fixed, or chosen by silhouette among ``k_range``); speakers with
fewer than ``min_utterances`` are skipped and reported. :func:`cluster_report` compares the
clusters with emotion labels where they exist (purity, NMI, ARI per speaker and overall)
against one global k-means over all speakers and a random assignment with the same K.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional, Sequence, Tuple

import numpy as np

from ..config import ConfigError

__all__ = ["ClusteringConfig", "cluster_per_speaker", "cluster_report", "purity", "plot_embeddings"]


@dataclass
class ClusteringConfig:
    """Args:
    k: clusters per speaker; 0 = choose by silhouette among ``k_min..k_max``.
    k_min, k_max: silhouette search range.
    min_utterances: speakers with fewer utterances are skipped (and reported).
    seed: k-means initialisation.
    """

    k: int = 4
    k_min: int = 2
    k_max: int = 6
    min_utterances: int = 8
    seed: int = 0

    def __post_init__(self):
        if self.k < 0:
            raise ConfigError(f"k must be >= 0 (0 = choose by silhouette), got {self.k}")
        if not 2 <= self.k_min <= self.k_max:
            raise ConfigError(f"k_min and k_max must satisfy 2 <= k_min <= k_max, got {self.k_min}, {self.k_max}")
        if self.min_utterances < 1:
            raise ConfigError(f"min_utterances must be >= 1, got {self.min_utterances}")


def _normalise(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def _kmeans(x: np.ndarray, k: int, seed: int) -> np.ndarray:
    from sklearn.cluster import KMeans

    return KMeans(n_clusters=k, n_init=10, random_state=seed).fit_predict(x)


def _choose_k(x: np.ndarray, cfg: ClusteringConfig) -> Tuple[int, np.ndarray]:
    from sklearn.metrics import silhouette_score

    best = (-2.0, 0, None)
    for k in range(cfg.k_min, min(cfg.k_max, len(x) - 1) + 1):
        labels = _kmeans(x, k, cfg.seed)
        if len(set(labels)) < 2:
            continue
        score = silhouette_score(x, labels)
        if score > best[0]:
            best = (score, k, labels)
    if best[2] is None:
        return 1, np.zeros(len(x), dtype=int)
    return best[1], best[2]


def cluster_per_speaker(
    embeddings: np.ndarray, speakers: Sequence[str], cfg: ClusteringConfig
) -> Tuple[np.ndarray, Dict[str, int], Dict[str, str]]:
    """Cluster ids (-1 for skipped speakers' utterances), K per speaker, and skipped speakers with reasons."""
    x = _normalise(np.asarray(embeddings, dtype=np.float64))
    speakers = np.asarray(speakers)
    clusters = np.full(len(x), -1, dtype=int)
    chosen: Dict[str, int] = {}
    skipped: Dict[str, str] = {}
    for spk in sorted(set(speakers)):
        idx = np.where(speakers == spk)[0]
        if len(idx) < max(cfg.min_utterances, 2):
            skipped[spk] = f"{len(idx)} utterances (< min_utterances {cfg.min_utterances})"
            continue
        if cfg.k > 0:
            k = min(cfg.k, len(idx))
            labels = _kmeans(x[idx], k, cfg.seed)
        else:
            k, labels = _choose_k(x[idx], cfg)
        clusters[idx] = labels
        chosen[spk] = k
    return clusters, chosen, skipped


def purity(clusters: Sequence[int], labels: Sequence[str]) -> float:
    clusters, labels = np.asarray(clusters), np.asarray(labels)
    total = 0
    for c in set(clusters.tolist()):
        _, counts = np.unique(labels[clusters == c], return_counts=True)
        total += counts.max()
    return total / len(labels)


def _scores(clusters, labels) -> Dict[str, float]:
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    return {
        "purity": float(purity(clusters, labels)),
        "nmi": float(normalized_mutual_info_score(labels, clusters)),
        "ari": float(adjusted_rand_score(labels, clusters)),
    }


def cluster_report(
    embeddings: np.ndarray,
    speakers: Sequence[str],
    emotions: Sequence[Optional[str]],
    clusters: np.ndarray,
    k_per_speaker: Dict[str, int],
    seed: int = 0,
) -> Dict:
    """Per-speaker clustering vs global k-means vs random, scored against emotion labels.

    Scores are computed within each speaker (the question is whether a speaker's clusters
    separate that speaker's emotions) and averaged over speakers (weighted by utterances).
    """
    speakers, emotions = np.asarray(speakers), np.asarray(emotions, dtype=object)
    has_label = np.array([e is not None for e in emotions]) & (clusters >= 0)
    n_emotions = len({e for e in emotions[has_label]}) or 1
    global_clusters = _kmeans(_normalise(np.asarray(embeddings, dtype=np.float64)), n_emotions, seed)
    rng = np.random.default_rng(seed)
    report: Dict = {"per_speaker": {}, "overall": {}}
    totals: Dict[str, Dict[str, float]] = {m: {} for m in ("per_speaker_kmeans", "global_kmeans", "random")}
    weight_sum = 0
    for spk, k in sorted(k_per_speaker.items()):
        idx = np.where((speakers == spk) & has_label)[0]
        if len(idx) < 2:
            continue
        labels = emotions[idx].astype(str)
        random_clusters = rng.integers(0, k, size=len(idx))
        entry = {
            "n": int(len(idx)),
            "k": int(k),
            "per_speaker_kmeans": _scores(clusters[idx], labels),
            "global_kmeans": _scores(global_clusters[idx], labels),
            "random": _scores(random_clusters, labels),
        }
        report["per_speaker"][spk] = entry
        weight_sum += len(idx)
        for method in totals:
            for metric, value in entry[method].items():
                totals[method][metric] = totals[method].get(metric, 0.0) + value * len(idx)
    for method, sums in totals.items():
        report["overall"][method] = {m: v / weight_sum for m, v in sums.items()} if weight_sum else {}
    return report


def plot_embeddings(
    embeddings: np.ndarray, speakers: Sequence[str], emotions: Sequence[Optional[str]], path, title: str = ""
) -> None:
    """PNG: 2-D PCA of the L2-normalised embeddings, coloured by speaker (left) and by emotion (right)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.decomposition import PCA

    from ..utils.atomic import atomic_path

    xy = PCA(n_components=2, random_state=0).fit_transform(_normalise(np.asarray(embeddings, dtype=np.float64)))
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.8))
    for ax, values, name in ((axes[0], speakers, "speaker"), (axes[1], emotions, "emotion")):
        values = np.array(["?" if v is None else str(v) for v in values])
        for j, v in enumerate(sorted(set(values))):
            sel = values == v
            ax.scatter(xy[sel, 0], xy[sel, 1], s=14, label=v, color=plt.cm.tab20(j % 20))
        ax.set_title(f"coloured by {name}")
        ax.legend(fontsize=7, ncol=2, markerscale=1.2)
    fig.suptitle(title)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
