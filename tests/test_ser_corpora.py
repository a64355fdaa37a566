"""CREMA-D, ESD and RAVDESS layouts, speaker-independent splits, few labels, UA/WA, and the runner."""

import json

import pytest
from subprocess_env import stock_evaluate_test, stock_train

from s3prl_emoaware.corpora.reader import read_corpus
from s3prl_emoaware.corpora.synth import synthesize_corpus
from s3prl_emoaware.downstreams.ser.splits import label_subset, speaker_split, unweighted_accuracy, weighted_accuracy


def test_metrics_and_splits():
    truth = [0, 0, 0, 0, 1, 1]
    pred = [0, 0, 0, 0, 0, 1]
    assert weighted_accuracy(pred, truth) == pytest.approx(5 / 6)
    assert unweighted_accuracy(pred, truth) == pytest.approx((1.0 + 0.5) / 2)
    train, dev, test = speaker_split([f"s{i}" for i in range(10)] * 3, 0.2, 0.2, seed=1)
    assert len(test) == 2 and len(dev) == 2 and len(train) == 6 and not set(train) & (set(dev) | set(test))
    labels = ["a"] * 20 + ["b"] * 10 + ["c"] * 1
    subset = label_subset(labels, 0.1, seed=0)
    assert sorted(labels[i] for i in subset) == ["a", "a", "b", "c"]  # stratified, at least one per class


@pytest.mark.parametrize(
    "kind,pattern,n_spk",
    [
        ("cremad", "AudioWAV/*_*_*_*.wav", 6),
        ("esd", "00*/*/00*_*.wav", 4),
        ("ravdess", "Actor_*/03-01-*-*-*-*-*.wav", 6),
    ],
)
def test_generated_layouts_read_back(kind, pattern, n_spk, tmp_path):
    root = synthesize_corpus(kind, tmp_path / kind, seed=0, size="tiny")
    files = list(root.glob(pattern))
    utts = read_corpus(root)
    assert files and len(utts) == len(files)
    assert {u.emotion for u in utts} == {"neu", "hap", "ang", "sad"}
    assert len({u.speaker for u in utts}) == n_spk


@pytest.mark.slow
def test_stock_runner_with_ravdess_few_labels(tiny_ravdess, tmp_path):
    override = (
        "config.runner.total_steps=4,,config.runner.eval_step=2,,config.runner.save_step=2,,"
        "config.runner.log_step=2,,config.runner.gradient_accumulate_steps=1,,"
        f"config.downstream_expert.datarc.root='{tiny_ravdess}',,config.downstream_expert.datarc.num_workers=0,,"
        "config.downstream_expert.datarc.label_fraction=0.1"
    )
    expdir = tmp_path / "exp"
    stock_train("emoaware_fbank", "emotion_ravdess", override, expdir, cwd=tmp_path)
    predicted = evaluate_test_split(expdir, tmp_path)
    test_speakers = {line.split()[0].split("-")[-1] for line in predicted}
    assert len(test_speakers) >= 1


def evaluate_test_split(expdir, cwd):
    """Evaluate ``expdir``'s best checkpoint on test with the stock runner; check UA/WA; return the prediction lines."""
    stock_evaluate_test(expdir, cwd=cwd)
    metrics = json.loads((expdir / "test_metrics.json").read_text())
    assert 0 <= metrics["ua"] <= 1 and 0 <= metrics["wa"] <= 1
    return (expdir / "test_predict.txt").read_text().splitlines()
