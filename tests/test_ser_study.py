"""Few-label SER study: runner plan per (corpus, fraction, split), summary over splits, paired wins, report."""

import json

import pytest

from s3prl_emoaware.demo.ser_study import (EncoderSpec, SerStudyConfig, load_study_config, report_markdown,
                                           run_ser_study, ser_tasks, summarise)


def _write(runs, label, corpus, fraction, split, ua, wa):
    folder = runs / label / corpus / f"labels{fraction:g}" / f"split{split}"
    folder.mkdir(parents=True)
    (folder / "test_metrics.json").write_text(json.dumps({"ua": ua, "wa": wa}))


def test_summary_means_over_splits_and_counts_paired_wins(tmp_path):
    cfg = SerStudyConfig(corpora=["cremad"], label_fractions=[0.1], splits=3,
                         encoders=[EncoderSpec("a", "contrastive"), EncoderSpec("b", "speaker")])
    for split, (ua_a, ua_b) in enumerate([(0.5, 0.25), (0.25, 0.25), (0.75, 0.5)]):
        _write(tmp_path, "a", "cremad", 0.1, split, ua_a, ua_a + 0.1)
        _write(tmp_path, "b", "cremad", 0.1, split, ua_b, ua_b)
    summary = summarise(tmp_path, cfg)
    row = summary["table"]["a"]["cremad/labels0.1"]
    assert row["ua_mean"] == pytest.approx(0.5) and row["wa_mean"] == pytest.approx(0.6) and row["n"] == 3
    assert row["ua_std"] == pytest.approx((((0.0) ** 2 + 0.25 ** 2 + 0.25 ** 2) / 3) ** 0.5)
    assert summary["paired_wins_ties_losses"]["a"]["b"]["cremad/labels0.1"] == "2/1/0"
    assert summary["paired_wins_ties_losses"]["b"]["a"]["cremad/labels0.1"] == "0/1/2"
    text = report_markdown(summary)
    assert "| a | 50.0 ± 20.4 (60.0), n=3 |" in text and "- a vs b: cremad/labels0.1 2/1/0" in text
    assert "- b vs a:" not in text  # the markdown compares with the baselines (b: the speaker encoder) only
    # a missing split (run not finished) is left out of the mean and of the paired count
    (tmp_path / "b" / "cremad" / "labels0.1" / "split2" / "test_metrics.json").unlink()
    summary = summarise(tmp_path, cfg)
    assert summary["table"]["b"]["cremad/labels0.1"]["n"] == 2
    assert summary["paired_wins_ties_losses"]["a"]["b"]["cremad/labels0.1"] == "1/1/0"


def test_runner_plan_has_one_run_per_corpus_fraction_and_split(tmp_path):
    cfg = load_study_config(quick=False, overrides=["splits=2", "label_fractions=[0.1]"])
    tasks = ser_tasks(cfg, tmp_path)
    assert len(tasks) == len(cfg.corpora) * 2
    folders = {t.folder for t in tasks}
    assert "cremad/labels0.1/split1" in folders and len(folders) == len(tasks)
    split1 = next(t for t in tasks if t.folder == "esd/labels0.1/split1")
    assert "datarc.seed=1" in split1.override and "datarc.label_fraction=0.1" in split1.override
    assert str(tmp_path / "corpora" / "esd") in split1.override
    with pytest.raises(ValueError, match="init must be"):
        EncoderSpec("x", "imagenet")
    with pytest.raises(ValueError, match="unknown"):
        SerStudyConfig(corpora=["iemocap"])


@pytest.mark.slow
def test_quick_study_runs_every_stage_and_reports(tmp_path):
    text = run_ser_study(tmp_path / "study", quick=True)
    summary = json.loads((tmp_path / "study" / "report" / "ser_study.json").read_text())
    assert set(summary["table"]) == {"random_init", "speaker_only", "contrastive"}
    assert all(row["ravdess/labels0.5"]["n"] == 2 for row in summary["table"].values())
    assert (tmp_path / "study" / "report" / "ser_study.png").read_bytes()[:4] == b"\x89PNG"
    assert "| speaker_only |" in text and "| ser_contrastive |" in text  # table and stage times
