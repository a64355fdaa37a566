"""Intra-speaker clustering of a corpus, end to end: embed, cluster per speaker, score, write.

What ``s3prl-emoaware cluster`` and the staged jobs (demo, ser-study) run. Writes into ``out``
``assignments.json`` (utt_id -> cluster, K per speaker, skipped speakers and audio), and where
emotion labels exist ``report.json`` (purity / NMI / ARI per speaker and overall, versus one
global k-means and a random assignment) and ``embeddings.png`` (2-D PCA by speaker and by emotion).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Optional

__all__ = ["ClusterResult", "cluster_corpus"]


@dataclass(frozen=True)
class ClusterResult:
    """What :func:`cluster_corpus` wrote and found.

    Attributes:
        assignments: path of ``assignments.json``.
        n_clustered: utterances given a cluster; n_speakers: speakers clustered.
        skipped_speakers: speaker -> why it was not clustered.
        report: the content of ``report.json`` (None without emotion labels).
    """

    assignments: Path
    n_clustered: int
    n_speakers: int
    skipped_speakers: Dict[str, str]
    report: Optional[dict] = None


def cluster_corpus(
    corpus: Path, encoder: Path, out: Path, k: int = 4, min_utterances: int = 8, seed: int = 0
) -> ClusterResult:
    """Embed ``corpus`` with the speaker ``encoder`` checkpoint and cluster each speaker's utterances
    into ``k`` clusters (0: chosen by silhouette); see the module docstring for what is written."""
    from ..utils.atomic import atomic_write_json, ensure_writable_dir
    from .clustering import ClusteringConfig, cluster_per_speaker, cluster_report, plot_embeddings
    from .embed import embed_corpus

    cfg = ClusteringConfig(k=k, min_utterances=min_utterances, seed=seed)  # refused before any work
    corpus, encoder = Path(corpus), Path(encoder)
    out = ensure_writable_dir(out)
    utts, emb, skipped_audio = embed_corpus(corpus, encoder)
    speakers = [u.speaker for u in utts]
    clusters, k_per_speaker, skipped = cluster_per_speaker(emb, speakers, cfg)
    atomic_write_json(
        out / "assignments.json",
        {
            "clusters": {u.utt_id: int(c) for u, c in zip(utts, clusters) if c >= 0},
            "speakers": {u.utt_id: u.speaker for u in utts},
            "k_per_speaker": k_per_speaker,
            "skipped_speakers": skipped,
            "skipped_audio": skipped_audio,
        },
    )
    report = None
    emotions = [u.emotion for u in utts]
    if any(e is not None for e in emotions):
        report = cluster_report(emb, speakers, emotions, clusters, k_per_speaker, seed)
        atomic_write_json(out / "report.json", report)
        plot_embeddings(emb, speakers, emotions, out / "embeddings.png", title=f"{encoder.name} on {corpus.name}")
    return ClusterResult(
        out / "assignments.json", int((clusters >= 0).sum()), len(k_per_speaker), dict(skipped), report
    )
