"""Streaming pre-training data: header-only index, frame-bounded bucketing, skipped files, exact resume."""

import json
import logging
import pickle
import random
import shutil
import subprocess

import numpy as np
import pytest
import soundfile as sf
import torch
from subprocess_env import PYTHON, REPO_ROOT, child_env

from s3prl_emoaware.config import load_config, shipped_config
from s3prl_emoaware.corpora.reader import read_corpus
from s3prl_emoaware.features import FbankConfig
from s3prl_emoaware.intensity.cache import IntensityCache
from s3prl_emoaware.intensity.extract import extract_intensities
from s3prl_emoaware.pretraining.data import PretrainEntry, PretrainItem, build_dataset, epoch_batches
from s3prl_emoaware.pretraining.run import pretrain
from s3prl_emoaware.pretraining.trainer import PretrainRecipe
from s3prl_emoaware.utils.errors import UserFacingError

TINY = shipped_config("upstream_configs", "ems_mockingjay_tiny")
BUCKETED = ["training.batch_size=0", "training.max_frames_per_batch=700", "training.num_workers=2"]


def _recipe(*overrides):
    return load_config(PretrainRecipe, TINY, ["masking.strategy=random", *overrides])


def _entries(n=200, seed=0):
    rng = random.Random(seed)
    return [PretrainEntry(f"u{i:04d}", f"/x/u{i}.wav", rng.randint(20, 1500)) for i in range(n)]


def test_bucketing_is_pure_bounded_and_sharded():
    entries = _entries()
    bound = 3000
    one = epoch_batches(entries, 0, 7, 3, max_frames_per_batch=bound)
    assert one == epoch_batches(list(entries), 0, 7, 3, max_frames_per_batch=bound)  # a function of (seed, epoch)
    assert one != epoch_batches(entries, 0, 7, 4, max_frames_per_batch=bound)
    assert one != epoch_batches(entries, 0, 8, 3, max_frames_per_batch=bound)
    assert sorted(i for b in one for i in b) == list(range(len(entries)))  # one rank: every utterance once
    for b in one:
        padded = len(b) * max(entries[i].num_frames for i in b)
        assert padded <= bound or len(b) == 1
    assert len({len(b) for b in one}) > 3  # short utterances are packed many to a batch
    # with a count cap too, both bounds hold
    assert all(len(b) <= 5 for b in epoch_batches(entries, 5, 7, 3, max_frames_per_batch=bound))
    # an utterance longer than the bound is a batch alone
    long = entries + [PretrainEntry("z_long", "/x/z.wav", 5000)]
    assert [len(b) for b in epoch_batches(long, 0, 0, 0, max_frames_per_batch=bound) if len(long) - 1 in b] == [1]
    for world in (2, 3):
        shards = [epoch_batches(entries, 0, 7, 3, r, world, bound) for r in range(world)]
        assert len({len(s) for s in shards}) == 1  # equal step counts per rank
        seen = [i for s in shards for b in s for i in b]
        assert len(seen) == len(set(seen))  # disjoint
        assert shards == [epoch_batches(entries, 0, 7, 3, r, world, bound) for r in range(world)]


def test_fixed_count_mode_is_todays_batches():
    entries = _entries(30)
    order = sorted(range(30), key=lambda i: (entries[i].num_frames, entries[i].utt_id))
    batches = epoch_batches(entries, 4, 0, 0)
    assert sorted(map(tuple, batches)) == sorted(tuple(order[i : i + 4]) for i in range(0, 30, 4))
    with pytest.raises(ValueError, match="batch_size or training.max_frames_per_batch"):
        epoch_batches(entries, 0, 0, 0)


def test_dataset_holds_paths_and_lengths_only(tiny_iemocap):
    config = FbankConfig(delta_order=2)
    dataset = build_dataset(read_corpus(tiny_iemocap), config, max_frames=150)
    assert not any(isinstance(v, (torch.Tensor, np.ndarray)) for v in vars(dataset).values())
    assert all(isinstance(v, (str, int, type(None))) for e in dataset.entries for v in vars(e).values())
    assert len(pickle.dumps(dataset)) < 400 * len(dataset)
    for i in (0, len(dataset) - 1):
        item = dataset[i]
        assert isinstance(item, PretrainItem) and item.features.shape == (dataset.entries[i].num_frames, 240)
    # the header length is the feature length (before the crop)
    full = build_dataset(read_corpus(tiny_iemocap), config, max_frames=10**6)
    assert [full[i].features.shape[0] for i in range(3)] == [e.num_frames for e in full.entries[:3]]


@pytest.fixture()
def damaged_corpus(tiny_iemocap, tmp_path):
    corpus = tmp_path / "corpus"
    shutil.copytree(tiny_iemocap, corpus)
    utts = read_corpus(corpus)
    nan_file, garbage_file = utts[1].path, utts[2].path
    samples = sf.info(str(nan_file)).frames
    sf.write(str(nan_file), np.full(samples, np.nan, dtype=np.float32), 16000, subtype="FLOAT")  # header fine
    garbage_file.write_bytes(b"not a wav file at all")  # header unreadable
    return corpus, utts[1].utt_id, garbage_file


def test_bad_files_are_skipped_and_reported(damaged_corpus, tmp_path, caplog):
    corpus, nan_id, garbage_file = damaged_corpus
    with caplog.at_level(logging.WARNING, logger="s3prl_emoaware.pretraining"):
        trainer, history = pretrain(
            _recipe("training.total_steps=15", "training.num_workers=2"), corpus, tmp_path / "pt", None
        )
    assert len(history) == 15 and all(np.isfinite(l) for _, l in history)
    assert list(trainer.skipped) == [nan_id] and "NaN" in trainer.skipped[nan_id]
    assert garbage_file.name not in {e.path.rsplit("/", 1)[-1] for e in trainer.items}
    text = caplog.text
    assert f"{garbage_file}: unreadable audio header" in text
    assert "end of epoch 0: 1 files skipped" in text and "end of training: 1 files skipped" in text


def test_intensity_frame_mismatch_is_caught_before_step_one(tiny_iemocap, tmp_path):
    cache_dir = tmp_path / "cache"
    extract_intensities(tiny_iemocap, cache_dir, source="energy")
    index = json.loads((cache_dir / "index.json").read_text())
    first = sorted(index["items"])[0]
    index["items"][first]["num_frames"] += 3
    (cache_dir / "index.json").write_text(json.dumps(index))
    with pytest.raises(UserFacingError, match=f"intensity of {first} has .* frames but its features have"):
        build_dataset(read_corpus(tiny_iemocap), FbankConfig(delta_order=2), IntensityCache(cache_dir))


def test_resume_is_exact_with_buckets_and_workers(tiny_iemocap, tmp_path):
    _, full = pretrain(_recipe(*BUCKETED), tiny_iemocap, tmp_path / "full", None)
    _, first = pretrain(_recipe(*BUCKETED), tiny_iemocap, tmp_path / "cut", None, stop_at=3)
    _, rest = pretrain(_recipe(*BUCKETED), tiny_iemocap, tmp_path / "cut", None, resume=True)
    _, inline = pretrain(_recipe(*BUCKETED[:-1], "training.num_workers=0"), tiny_iemocap, tmp_path / "w0", None)
    losses = [round(l, 6) for _, l in full]
    assert [round(l, 6) for _, l in first + rest] == losses == [round(l, 6) for _, l in inline]
    assert len(losses) == 6


_DDP_CHILD = """
import json, sys
from s3prl_emoaware.config import load_config
from s3prl_emoaware.pretraining.run import pretrain
from s3prl_emoaware.pretraining.trainer import PretrainRecipe
config, corpus, out, stop, resume, *overrides = sys.argv[1:]
trainer, history = pretrain(load_config(PretrainRecipe, config, overrides), corpus, out, None,
                            resume=resume == "1", stop_at=int(stop) or None)
if trainer.rank == 0:
    with open(out + f"/history-{trainer.step}.json", "w") as f:
        json.dump(history, f)
"""


@pytest.mark.slow
def test_resume_is_exact_under_torchrun(tiny_iemocap, tmp_path):
    child = tmp_path / "child.py"
    child.write_text(_DDP_CHILD)
    overrides = ["masking.strategy=random", "training.total_steps=4", *BUCKETED]

    def run(out, stop, resume, port):
        proc = subprocess.run(
            [
                PYTHON,
                "-m",
                "torch.distributed.run",
                "--nproc_per_node",
                "2",
                "--master_port",
                str(port),
                str(child),
                str(TINY),
                str(tiny_iemocap),
                str(out),
                str(stop),
                "1" if resume else "0",
                *overrides,
            ],
            capture_output=True,
            text=True,
            env=child_env(),
            timeout=600,
            cwd=REPO_ROOT,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]

    run(tmp_path / "full", 0, False, 29741)
    run(tmp_path / "cut", 2, False, 29742)
    run(tmp_path / "cut", 0, True, 29743)
    full = json.loads((tmp_path / "full" / "history-4.json").read_text())
    cut = json.loads((tmp_path / "cut" / "history-2.json").read_text()) + json.loads(
        (tmp_path / "cut" / "history-4.json").read_text()
    )
    assert [s for s, _ in cut] == [1, 2, 3, 4]
    assert [round(l, 6) for _, l in cut] == [round(l, 6) for _, l in full]


def test_clustering_embeddings_stream_and_skip_bad_files(damaged_corpus, tmp_path):
    from s3prl_emoaware.contrastive.embed import embed_corpus
    from s3prl_emoaware.pretraining.tasks import build_task
    from s3prl_emoaware.pretraining.trainer import Trainer

    corpus, nan_id, garbage_file = damaged_corpus
    recipe = load_config(PretrainRecipe, shipped_config("upstream_configs", "ecapa_speaker_tiny"), [])
    task = build_task(recipe.kind, recipe.model, recipe.masking, recipe.frontend.feature_dim, recipe.objective)
    ckpt = Trainer(task, build_dataset(read_corpus(corpus), recipe.frontend), recipe, tmp_path / "enc").save()
    utts, emb, skipped = embed_corpus(corpus, ckpt, batch_size=8, num_workers=2)
    assert nan_id in skipped and len(skipped) == 2 and len(utts) == len(read_corpus(corpus)) - 2
    assert emb.shape == (len(utts), task.config.embedding_dim) and np.isfinite(emb).all()
    assert (np.abs(emb).sum(1) > 0).all()  # every row was filled
    _, again, _ = embed_corpus(corpus, ckpt, batch_size=8, num_workers=0)
    assert np.allclose(emb, again, atol=1e-5)  # workers change nothing
