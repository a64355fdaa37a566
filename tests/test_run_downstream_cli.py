"""The run-downstream wrapper and its runner module: flag handling, shipped configs, data-root checks, fold scoring."""

import pytest

from s3prl_emoaware.cli.main import main
from s3prl_emoaware.downstreams.scoring import fold_accuracy
from s3prl_emoaware.s3prl_adapters import runner as rd


def test_scan_flags_short_long_and_equals_forms():
    flags = rd.scan_flags(
        ["-m", "train", "--downstream=emotion", "-u", "fbank", "-o", "config.x=1,,args.y=2", "--expdir", "/tmp/e"]
    )
    assert flags.given() == {
        "mode": "train",
        "downstream": "emotion",
        "override": "config.x=1,,args.y=2",
        "expdir": "/tmp/e",
    }
    assert flags.new_training and not rd.scan_flags(["-m", "train", "-e", "x.ckpt"]).new_training


def test_replace_flag_replaces_or_appends():
    argv = ["-m", "train", "-p", "a", "-d", "emotion"]
    assert rd.replace_flag(argv, ("-p", "--expdir"), "b") == ["-m", "train", "-p", "b", "-d", "emotion"]
    assert rd.replace_flag(["-m", "train"], ("-o", "--override"), "config.a=1") == ["-m", "train", "-o", "config.a=1"]
    assert rd.replace_flag(["--expdir=a"], ("-p", "--expdir"), "c") == ["--expdir=c"]


def test_label_fraction_merges_into_the_override_the_runner_reads(tmp_path):
    argv = rd.with_label_fraction(["-m", "train", "-d", "emotion_cremad", "-o", "config.runner.total_steps=4"], 0.1)
    cfg = tmp_path / "c.yaml"
    cfg.write_text("runner:\n  total_steps: 10\ndownstream_expert:\n  datarc:\n    label_fraction: 1.0\n")
    eff = rd.effective_config(cfg, rd.scan_flags(argv).override)
    assert eff["downstream_expert"]["datarc"]["label_fraction"] == 0.1
    assert eff["runner"]["total_steps"] == 4
    assert (
        rd.scan_flags(rd.with_label_fraction(["-d", "emotion_esd"], 0.5)).override
        == "config.downstream_expert.datarc.label_fraction=0.5"
    )


def test_label_fraction_is_refused_where_it_means_nothing(capsys):
    status = main(["run-downstream", "--label-fraction", "0.1", "-m", "train", "-u", "fbank", "-d", "emotion"])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(err) == 1 and "--label-fraction applies to emotion_cremad" in err[0]
    with pytest.raises(rd.RunDownstreamError, match="must be in"):
        rd.with_label_fraction(["-d", "emotion_ravdess"], 1.5)


def test_effective_config_applies_config_overrides(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("runner:\n  total_steps: 10\ndownstream_expert:\n  datarc:\n    root: PLACEHOLDER\n")
    eff = rd.effective_config(
        cfg, "config.runner.total_steps=4,,config.downstream_expert.datarc.root=/data,,args.seed=3"
    )
    assert eff["runner"]["total_steps"] == 4
    assert eff["downstream_expert"]["datarc"]["root"] == "/data"


def test_missing_shipped_config_is_one_clear_error(capsys):
    status = main(["run-downstream", "-m", "train", "-u", "fbank", "-d", "no_such_task", "--device", "cpu"])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(err) == 1
    assert "no shipped config for downstream 'no_such_task'" in err[0]


def test_all_folds_requires_a_fold_config(tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("runner:\n  total_steps: 1\ndownstream_expert:\n  datarc: {}\n")
    status = main(["run-downstream", "--all-folds", "-m", "train", "-u", "fbank", "-d", "x", "-c", str(cfg)])
    assert status == 2
    assert "test_fold" in capsys.readouterr().err


def test_fold_accuracy_from_prediction_files(tmp_path):
    (tmp_path / "test_fold2_predict.txt").write_text("a neu\nb ang\nc sad\nd neu\n")
    (tmp_path / "test_fold2_truth.txt").write_text("a neu\nb hap\nc sad\nd neu\n")
    result = fold_accuracy(tmp_path, "fold2")
    assert result.acc == pytest.approx(0.75)
    assert result.majority_rate == pytest.approx(0.5)
    assert result.n_test == 4
    with pytest.raises(FileNotFoundError, match="no test predictions for fold3"):
        fold_accuracy(tmp_path, "fold3")


def test_best_checkpoint_prefers_dev_best(tmp_path):
    from s3prl_emoaware.s3prl_adapters.launch import NoCheckpointError, best_checkpoint

    (tmp_path / "states-2.ckpt").write_text("")
    (tmp_path / "states-10.ckpt").write_text("")
    assert best_checkpoint(tmp_path).name == "states-10.ckpt"
    (tmp_path / "dev-best.ckpt").write_text("")
    assert best_checkpoint(tmp_path).name == "dev-best.ckpt"
    with pytest.raises(NoCheckpointError, match="no checkpoint"):
        best_checkpoint(tmp_path / "empty")


def _broken_copy(src, dst, how):
    import shutil

    shutil.copytree(src, dst)
    wav = sorted(dst.glob("Session1/sentences/wav/*/*.wav"))[0]
    if how == "unreadable":
        wav.write_bytes(b"RIFF....not really a wav file")
    else:
        import soundfile as sf

        sf.write(str(wav), [], 16000, subtype="PCM_16")
    return wav


@pytest.mark.parametrize("how,message", [("unreadable", "unreadable audio"), ("empty", "empty audio")])
def test_bad_wav_in_corpus_is_one_line_naming_it(tiny_iemocap, tmp_path, capsys, how, message):
    corpus = tmp_path / "iemocap"
    bad = _broken_copy(tiny_iemocap, corpus, how)
    override = (
        f"config.downstream_expert.datarc.root='{corpus}',,"
        f"config.downstream_expert.datarc.meta_data='{corpus / 'meta_data'}'"
    )
    status = main(
        [
            "run-downstream",
            "-m",
            "train",
            "-u",
            "fbank",
            "-d",
            "emotion",
            "-o",
            override,
            "-p",
            str(tmp_path / "exp"),
            "--device",
            "cpu",
        ]
    )
    err = capsys.readouterr().err.strip()
    assert status == 2 and err.count("\n") == 0
    assert str(bad) in err and message in err
    assert not (tmp_path / "exp").exists()  # nothing started, nothing half-written
