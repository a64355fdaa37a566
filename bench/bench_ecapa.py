"""ECAPA benchmarks: embedding extraction throughput and per-speaker clustering time as the corpus grows.

1. ``embed_corpus`` (reading, features and our ECAPA) on a generated VoxCeleb1-layout corpus
   replicated 1x, 4x and 16x (symlinked copies under new video folders), in seconds of audio
   per second;
2. the encoder alone, ours versus SpeechBrain's ``ECAPA_TDNN`` (same weights loaded into ours,
   same feature batches, interleaved repetitions), when SpeechBrain is installed;
3. per-speaker k-means (K = 4 and K by silhouette) on the embeddings, replicated with a little
   jitter so that every speaker has 1x, 4x, 16x as many utterances.

Usage: python bench/bench_ecapa.py [--channels 512] [--scales 1 4 16] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # measure the checkout, not an installed copy


def _replicate(corpus: Path, out: Path, scale: int) -> Path:
    """VoxCeleb1 layout with every video folder present ``scale`` times (symlinked files)."""
    for wav in sorted(corpus.glob("wav/id*/*/*.wav")):
        for r in range(scale):
            target = out / "wav" / wav.parts[-3] / f"{wav.parts[-2]}r{r}" / wav.name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to(wav)
    return out


def _encoder_only(ours, feats, repeats: int):
    """Seconds per pass over ``feats`` for ours and SpeechBrain's encoder (None without SpeechBrain)."""
    try:
        from speechbrain.lobes.models.ECAPA_TDNN import ECAPA_TDNN
    except ImportError:
        return None
    from s3prl_emoaware.models.ecapa import load_speechbrain_state_dict

    c = ours.config
    reference = ECAPA_TDNN(
        c.input_dim,
        lin_neurons=c.embedding_dim,
        channels=list(c.channels),
        attention_channels=c.attention_channels,
        res2net_scale=c.res2net_scale,
        se_channels=c.se_channels,
    ).eval()
    load_speechbrain_state_dict(ours, reference.state_dict())  # same weights in both
    batches = []
    for start in range(0, len(feats), 16):
        chunk = feats[start : start + 16]
        lengths = torch.tensor([f.shape[0] for f in chunk])
        batches.append((torch.nn.utils.rnn.pad_sequence(chunk, batch_first=True), lengths))
    times = {"ours": [], "speechbrain": []}
    with torch.no_grad():
        for _ in range(repeats):
            for name in times:
                start = time.perf_counter()
                for padded, lengths in batches:
                    if name == "ours":
                        ours(padded, lengths)
                    else:
                        reference(padded, lengths=lengths.float() / padded.shape[1])
                times[name].append(time.perf_counter() - start)
    return {k: statistics.median(v) for k, v in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--channels", type=int, default=512)
    parser.add_argument("--scales", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    import soundfile as sf

    from s3prl_emoaware.config import to_dict
    from s3prl_emoaware.contrastive.clustering import ClusteringConfig, cluster_per_speaker
    from s3prl_emoaware.contrastive.embed import embed_corpus
    from s3prl_emoaware.corpora.synth import synthesize_corpus
    from s3prl_emoaware.features import FbankConfig, FbankFrontend
    from s3prl_emoaware.models.ecapa import EcapaConfig, EcapaTdnn
    from s3prl_emoaware.utils.audio import read_audio

    c = args.channels
    cfg = EcapaConfig(channels=[c, c, c, c, 3 * c])
    fbank = FbankConfig(window_type="hamming", cmvn_std=False)
    print(f"ECAPA {c} channels, {torch.get_num_threads()} threads; medians where repeated")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        corpus = synthesize_corpus("voxceleb", tmp / "corpus", size="tiny")
        ckpt = tmp / "ecapa.ckpt"
        torch.save(
            {
                "format": "s3prl_emoaware",
                "kind": "ecapa_speaker",
                "model": {f"encoder.{k}": v for k, v in EcapaTdnn(cfg).state_dict().items()},
                "config": {"model": to_dict(cfg), "frontend": to_dict(fbank)},
            },
            ckpt,
        )
        embed_corpus(corpus, ckpt)  # warm-up: imports, allocator
        emb = speakers = None
        for scale in args.scales:
            root = _replicate(corpus, tmp / f"x{scale}", scale)
            start = time.perf_counter()
            utts, out, _ = embed_corpus(root, ckpt)
            elapsed = time.perf_counter() - start
            audio = sum(sf.info(str(u.path)).duration for u in utts)
            print(
                f"  embed_corpus {scale:>2}x: {len(utts):>4} clips, {audio:6.0f} s audio in {elapsed:6.1f} s: "
                f"{audio / elapsed:5.1f} s audio / s (reading and features included)"
            )
            if scale == args.scales[0]:
                emb, speakers = out, [u.speaker for u in utts]
                frontend = FbankFrontend(fbank)
                feats = sorted(
                    (frontend.extract_one(torch.from_numpy(read_audio(u.path))) for u in utts), key=lambda f: f.shape[0]
                )
                model = EcapaTdnn(cfg).eval()
                compared = _encoder_only(model, feats, args.repeats)
                if compared is None:
                    print("  encoder only: SpeechBrain not installed, no reference timing")
                else:
                    print(
                        f"  encoder only, same weights and batches ({audio:.0f} s audio): ours "
                        f"{audio / compared['ours']:.1f} s audio / s, SpeechBrain ECAPA_TDNN "
                        f"{audio / compared['speechbrain']:.1f}: ratio {compared['speechbrain'] / compared['ours']:.2f}x"
                    )
        rng = np.random.default_rng(0)
        cluster_per_speaker(emb, speakers, ClusteringConfig(k=2, min_utterances=2))  # warm-up: sklearn imports
        for scale in args.scales:
            x = np.concatenate([emb + rng.normal(scale=0.01, size=emb.shape) for _ in range(4 * scale)])
            spk = speakers * (4 * scale)
            for k, name in ((4, "K=4"), (0, "K by silhouette")):
                start = time.perf_counter()
                cluster_per_speaker(x, spk, ClusteringConfig(k=k, min_utterances=4))
                print(
                    f"  clustering {scale:>2}x ({len(x):>5} utterances, {len(set(spk))} speakers), {name:<16}: "
                    f"{time.perf_counter() - start:.2f} s"
                )


if __name__ == "__main__":
    main()
