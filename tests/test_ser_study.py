"""Few-label SER study: run plan (seeds x splits, scales, the SSL rows' StrengthNet stages), paired
differences with bootstrap intervals over seeds x splits, the new-speaker check of the pre-training
and StrengthNet corpora, the multi-task loss schedules, and the quick study end to end."""

import json

import pytest

from s3prl_emoaware.contrastive.tasks import ContrastiveObjective, multitask_weights
from s3prl_emoaware.corpora.layouts import esd
from s3prl_emoaware.corpora.reader import read_corpus
from s3prl_emoaware.demo.ems_study import BackboneSpec, RowSpec
from s3prl_emoaware.demo.ser_study import (
    SSL_MASKING_KEY,
    EncoderSpec,
    SerStudyConfig,
    build_stages,
    check_new_speakers,
    contrastive_steps,
    load_study_config,
    report_markdown,
    run_ser_study,
    ser_tasks,
    study_runs,
    summarise,
)
from s3prl_emoaware.intensity.cache import IntensityCache
from s3prl_emoaware.utils.errors import UserFacingError
from s3prl_emoaware.utils.hashing import file_sha256
from s3prl_emoaware.utils.stats import clustered_bootstrap


def _write(runs, name, corpus, fraction, split, ua, wa):
    folder = runs / name / corpus / f"labels{fraction:g}" / f"split{split}"
    folder.mkdir(parents=True)
    (folder / "test_metrics.json").write_text(json.dumps({"ua": ua, "wa": wa}))


def test_run_plan_crosses_every_seed_with_every_split(tmp_path):
    cfg = load_study_config(
        quick=False, overrides=["seeds=[0,1]", "splits=3", "unlabeled_scales=[1,4]", "label_fractions=[0.1,1.0]"]
    )
    runs = study_runs(cfg)
    assert len({r.name for r in runs}) == len(runs)
    pairs = {}
    for run in runs:
        for task in ser_tasks(cfg, tmp_path, run.fractions):
            split = int(task.folder.rsplit("split", 1)[1])
            assert f"datarc.seed={split}," in task.override
            pairs.setdefault((run.row, task.folder.rsplit("/", 1)[0]), set()).add((run.seed, split))
    every = {(s, k) for s in (0, 1) for k in range(3)}
    assert all(seen == every for seen in pairs.values())
    # the table's rows at both fractions; the larger corpus only at the curve's fraction
    curve = "contrastive_from_random@4x"
    assert ("contrastive_from_random", "esd/labels1") in pairs and (curve, "esd/labels0.1") in pairs
    assert (curve, "esd/labels1") not in pairs and ("speaker_only@4x", "esd/labels0.1") not in pairs
    assert ("npc_ems", "ravdess/labels1") in pairs  # SSL rows judged at the same fractions
    assert ("contrastive@4x", "esd/labels0.1") not in pairs  # the default curve: the row from the untrained encoder
    every = study_runs(load_study_config(quick=False, overrides=["unlabeled_scales=[1,4]", "curve_encoders=[]"]))
    assert {r.row for r in every if r.scale == 4} == {
        "contrastive@4x",
        "contrastive_from_random@4x",
        "contrastive_multitask@4x",
        "contrastive_adversarial@4x",
    }
    with pytest.raises(ValueError, match="curve_encoders"):
        load_study_config(quick=False, overrides=["curve_encoders=[speaker_only]"])
    names = [s.name for s in build_stages(cfg, tmp_path)]
    for seed in (0, 1):
        assert {
            f"speaker_encoder_s{seed}",
            f"clusters_x1_s{seed}",
            f"clusters_x4_s{seed}",
            f"random_init_s{seed}",
            f"pretrain_contrastive_from_random_4x_s{seed}",
            f"pretrain_npc_ems_s{seed}",
            f"ser_s{seed}",
        } <= set(names)
    assert names[0] == "corpora" and names[-1] == "report" and len(set(names)) == len(names)


def _ssl_stages(tmp_path, rows):
    cfg = load_study_config(quick=False, overrides=[f"ssl_rows=[{', '.join(rows)}]"])
    return [s.name for s in build_stages(cfg, tmp_path) if s.name.startswith("ssl_")]


def test_strengthnet_stages_exactly_when_an_ssl_row_reads_strengthnet(tmp_path):
    cfg = load_study_config(quick=False)
    # the default EMS rows judge the EMS study's EMS: StrengthNet intensities of its recipe
    assert {r.intensity for r in cfg.ssl_rows if r.masking == "ems"} == {"strengthnet"}
    assert cfg.strengthnet == "strengthnet_small" and cfg.strengthnet_corpus == "esd"
    names = [s.name for s in build_stages(cfg, tmp_path)]
    assert [n for n in names if n.startswith("ssl_")] == ["ssl_strengthnet", "ssl_intensity_strengthnet"]
    ssl_pretraining = [names.index(f"pretrain_{r.label}_s{s}") for r in cfg.ssl_rows for s in cfg.seeds]
    assert names.index("ssl_strengthnet") < names.index("ssl_intensity_strengthnet") < min(ssl_pretraining)
    energy = "{label: e, backbone: mockingjay, masking: ems, intensity: energy}"
    strength = "{label: s, backbone: npc, masking: ems, intensity: strengthnet}"
    plain = "{label: r, backbone: mockingjay, masking: random}"
    assert _ssl_stages(tmp_path, [energy, plain]) == ["ssl_intensity_energy"]
    assert _ssl_stages(tmp_path, [plain, energy, strength]) == [
        "ssl_strengthnet",
        "ssl_intensity_strengthnet",
        "ssl_intensity_energy",
    ]
    assert _ssl_stages(tmp_path, [plain]) == [] and _ssl_stages(tmp_path, []) == []
    quick = load_study_config(quick=True)
    assert quick.strengthnet == "strengthnet_tiny"
    assert "ssl_strengthnet" in [s.name for s in build_stages(quick, tmp_path)]
    backbone = BackboneSpec("mockingjay", "ems_mockingjay_tiny", "ems_mockingjay_local")
    with pytest.raises(ValueError, match="intensity must be one of"):  # the oracle is the EMS study's alone
        SerStudyConfig(ssl_backbones=[backbone], ssl_rows=[RowSpec("o", "mockingjay", "ems", "oracle")])
    with pytest.raises(ValueError, match="strengthnet_corpus"):
        SerStudyConfig(strengthnet_corpus="iemocap")


def test_knob_config_chooses_on_corpora_of_another_seed():
    knob, main = load_study_config(quick=False, name="knob"), load_study_config(quick=False)
    assert knob.seed != main.seed
    combines = {o for e in knob.encoders for o in e.overrides if o.startswith("objective.combine=")}
    assert combines == {"objective.combine=alternate", "objective.combine=balanced"}


def test_config_refuses_what_cannot_run():
    with pytest.raises(ValueError, match="init must be"):
        EncoderSpec("x", "imagenet")
    with pytest.raises(ValueError, match="unknown"):
        SerStudyConfig(corpora=["iemocap"])
    with pytest.raises(ValueError, match="distinct"):
        SerStudyConfig(seeds=[0, 0])
    with pytest.raises(ValueError, match="more than 20 speakers"):  # 2 x 10: the reader would take the release
        SerStudyConfig(unlabeled_scales=[1, 2])
    with pytest.raises(ValueError, match="pretrain_corpus: esd"):
        SerStudyConfig(pretrain_corpus="iemocap", unlabeled_scales=[1, 4])
    with pytest.raises(ValueError, match="whole number of speakers"):  # 2.5 of the 10 speakers
        SerStudyConfig(unlabeled_scales=[1, 0.25])
    with pytest.raises(ValueError, match="integers from 1 up"):
        SerStudyConfig(unlabeled_scales=[1, 2.5])
    with pytest.raises(ValueError, match="distinct"):
        SerStudyConfig(unlabeled_scales=[1, 1.0])
    # 1.0 is the 1x corpus (its folder and row names), fractions that give whole speakers are kept
    assert SerStudyConfig(unlabeled_scales=[1.0, 0.2, 0.5, 4.0]).unlabeled_scales == [1, 0.2, 0.5, 4]


def test_a_scale_below_one_keeps_the_first_voices_of_the_1x_corpus_as_english_esd_speakers(tmp_path):
    from s3prl_emoaware.corpora.synth import synthesize_corpus
    from s3prl_emoaware.demo.ser_study import generated_voices

    full = synthesize_corpus("esd", tmp_path / "x1", seed=1, size="tiny")
    half = synthesize_corpus("esd", tmp_path / "x0.5", seed=1, size="tiny", speakers=2)
    assert sorted({u.speaker for u in read_corpus(half)}) == ["0011", "0012"]  # read, not taken for Mandarin
    assert len({u.speaker for u in read_corpus(full)}) == 4
    voices = generated_voices(half)
    assert len(voices) == 2 and voices < generated_voices(full)


def test_the_utterance_axis_grows_the_1x_speakers_deeper_under_names_of_its_own(tmp_path):
    from s3prl_emoaware.corpora.synth import synthesize_corpus
    from s3prl_emoaware.demo.ser_study import _pretrain_corpus_path, _scale_options, generated_voices

    with pytest.raises(ValueError, match="scale_axis"):
        SerStudyConfig(scale_axis="sessions")
    with pytest.raises(ValueError, match="whole number of utterances per speaker and emotion"):  # 0.3 x 8
        SerStudyConfig(scale_axis="utterances", unlabeled_scales=[1, 0.3])
    # 2 x 10 speakers would be taken for the release; 10 speakers x 16 utterances per emotion are not
    cfg = SerStudyConfig(
        scale_axis="utterances", unlabeled_scales=[1, 2, 0.5], encoders=[EncoderSpec("c", "contrastive")]
    )
    assert _scale_options(cfg, 2) == {"utterances_per_emotion": 16} and _scale_options(cfg, 0.5) == {
        "utterances_per_emotion": 4
    }
    assert [r.row for r in study_runs(cfg)] == ["c", "c@2x_utts", "c@0.5x_utts"] * 3
    paths = [_pretrain_corpus_path(tmp_path, cfg, s).name for s in (1, 2)]
    assert paths == ["pretrain_esd_x1", "pretrain_esd_x2_utts"]  # the 1x corpus is the same on both axes
    speakers = SerStudyConfig(unlabeled_scales=[1, 4], encoders=[EncoderSpec("c", "contrastive")])
    assert _scale_options(speakers, 4) == {"speakers": 40} and _pretrain_corpus_path(tmp_path, speakers, 4).name == (
        "pretrain_esd_x4"
    )

    # tiny: 4 speakers x 3 utterances per emotion at 1x; twice as deep = the same voices, twice the utterances
    tiny = SerStudyConfig(corpus_size="tiny", scale_axis="utterances", unlabeled_scales=[1, 2])
    one = synthesize_corpus("esd", tmp_path / "x1", seed=1, size="tiny")
    two = synthesize_corpus("esd", tmp_path / "x2", seed=1, size="tiny", **_scale_options(tiny, 2))

    def per_speaker(corpus):
        utts = read_corpus(corpus)
        return {s: sum(u.speaker == s for u in utts) for s in {u.speaker for u in utts}}

    assert sorted(per_speaker(one)) == ["0011", "0012", "0013", "0014"]
    assert per_speaker(two) == {s: 2 * n for s, n in per_speaker(one).items()}
    assert generated_voices(two) == generated_voices(one)


def test_scale_budget_grows_contrastive_steps_with_the_corpus_only_when_asked(tmp_path, monkeypatch):
    encoders = [
        EncoderSpec("contrastive", "contrastive"),
        EncoderSpec("short", "contrastive", ["training.total_steps=50"]),
    ]
    common = dict(unlabeled_scales=[1, 4, 16], contrastive_overrides=["training.total_steps=300"], encoders=encoders)
    fixed, epochs = SerStudyConfig(**common), SerStudyConfig(scale_budget="epochs", **common)
    assert [contrastive_steps(fixed, "contrastive", s) for s in (1, 4, 16)] == [300, 300, 300]
    assert [contrastive_steps(epochs, "contrastive", s) for s in (1, 4, 16)] == [300, 1200, 4800]
    assert [contrastive_steps(epochs, "short", s) for s in (1, 4, 16)] == [50, 200, 800]  # the row's own steps
    with pytest.raises(ValueError, match="scale_budget"):
        SerStudyConfig(scale_budget="tokens")

    # the pre-training stage trains for exactly those steps
    import s3prl_emoaware.pretraining.run as pretraining_run
    from s3prl_emoaware.demo import ser_study

    seen = {}

    def fake_pretrain(recipe, corpus, out, *args, **kwargs):
        seen[out.name] = (recipe.training.total_steps, corpus.name)
        return None, [(0, 1.0)]

    monkeypatch.setattr(pretraining_run, "pretrain", fake_pretrain)
    for run in (r for r in study_runs(epochs) if r.kind == "contrastive" and r.seed == 0):
        ser_study._pretrain(epochs, run, tmp_path)
    assert seen["contrastive_s0"] == (300, "pretrain_esd_x1")
    assert seen["contrastive_16x_s0"] == (4800, "pretrain_esd_x16")
    assert seen["short_4x_s0"] == (200, "pretrain_esd_x4")


def test_paired_difference_matches_seed_and_split_and_bootstraps_over_both(tmp_path):
    cfg = SerStudyConfig(
        corpora=["cremad"],
        label_fractions=[0.1],
        splits=3,
        seeds=[0, 1],
        bootstrap=2000,
        encoders=[EncoderSpec("a", "contrastive"), EncoderSpec("b", "speaker"), EncoderSpec("r", "random")],
    )
    base = {(0, 0): 0.30, (0, 1): 0.50, (0, 2): 0.40, (1, 0): 0.60, (1, 1): 0.35, (1, 2): 0.45}
    for (seed, split), ua in base.items():
        _write(tmp_path, f"b_s{seed}", "cremad", 0.1, split, ua, ua)
        _write(tmp_path, f"a_s{seed}", "cremad", 0.1, split, ua + 0.1, ua + 0.2)
        _write(tmp_path, f"r_s{seed}", "cremad", 0.1, split, 0.25 + 0.05 * split - 0.1 * seed, 0.25)
    summary = summarise(tmp_path, cfg)
    row = summary["table"]["a"]["cremad/labels0.1"]
    assert row["n"] == 6 and row["seeds"] == [0, 1]
    assert row["ua_mean"] == pytest.approx(sum(base.values()) / 6 + 0.1)
    d = summary["paired"]["a"]["cremad/labels0.1"]["speaker_only"]
    # every (seed, split) pair differs by exactly +0.1: a zero-width interval only when pairs are matched
    assert d["mean_diff"] == pytest.approx(0.1) and d["ci95"] == pytest.approx([0.1, 0.1])
    assert d["n"] == 6 and d["wins_ties_losses"] == "6/0/0" and d["baseline"] == "b"
    r = {(s, k): 0.25 + 0.05 * k - 0.1 * s for s in (0, 1) for k in range(3)}
    # the splits of a seed share its encoders: seeds resampled, then their splits
    by_seed = {s: [base[(s, k)] + 0.1 - r[(s, k)] for k in range(3)] for s in (0, 1)}
    mean, lo, hi = clustered_bootstrap(by_seed, 2000)
    d = summary["paired"]["a"]["cremad/labels0.1"]["random_init"]
    assert d["mean_diff"] == pytest.approx(mean) and d["ci95"] == pytest.approx([lo, hi]) and lo < mean < hi
    assert "speaker_only" not in summary["paired"].get("b", {}).get("cremad/labels0.1", {})
    text = report_markdown(summary)
    assert "| a | 53.3 ± 9.9 (63.3), n=6 |" in text and "| a | +10.0 [+10.0, +10.0] 6/0/0 |" in text
    assert "2 pre-training seeds x 3 speaker splits" in text
    # a run not finished is left out of the mean and of the pairs
    (tmp_path / "b_s1" / "cremad" / "labels0.1" / "split2" / "test_metrics.json").unlink()
    summary = summarise(tmp_path, cfg)
    assert summary["table"]["b"]["cremad/labels0.1"]["n"] == 5
    assert summary["paired"]["a"]["cremad/labels0.1"]["speaker_only"]["n"] == 5


def test_curve_gives_the_gain_per_scale(tmp_path):
    cfg = SerStudyConfig(
        corpora=["esd"],
        label_fractions=[0.1],
        splits=2,
        seeds=[0],
        unlabeled_scales=[1, 4],
        bootstrap=500,
        curve_encoders=["c"],
        encoders=[EncoderSpec("s", "speaker"), EncoderSpec("c", "contrastive"), EncoderSpec("off", "contrastive")],
    )
    for split in range(2):
        _write(tmp_path, "s_s0", "esd", 0.1, split, 0.4, 0.4)
        _write(tmp_path, "c_s0", "esd", 0.1, split, 0.42, 0.42)
        _write(tmp_path, "c_4x_s0", "esd", 0.1, split, 0.46, 0.46)
        _write(tmp_path, "off_s0", "esd", 0.1, split, 0.5, 0.5)  # in the table, not on the curve
    summary = summarise(tmp_path, cfg)
    assert {p["encoder"] for p in summary["curve"]} == {"c"} and "off" in summary["table"]
    gains = {p["scale"]: p["mean_diff"] for p in summary["curve"]}
    assert gains == pytest.approx({1: 0.02, 4: 0.06})
    text = report_markdown(summary, {"1": 0.25, "4": 1.0})
    assert "| c | esd | +2.0 [+2.0, +2.0] | +6.0 [+6.0, +6.0] |" in text and "4x (1.00 h)" in text
    # the report says how long each scale was pre-trained (emo_ecapa_tiny: 6 steps)
    assert "scale_budget fixed: contrastive steps c 6 at 1x / 6 at 4x" in text
    cfg.scale_budget = "epochs"
    assert "scale_budget epochs: contrastive steps c 6 at 1x / 24 at 4x" in report_markdown(summarise(tmp_path, cfg))
    assert "(grown in speakers;" in text
    # along the utterance axis the curve reads the rows named for it, and says so
    cfg.scale_axis = "utterances"
    for split in range(2):
        _write(tmp_path, "c_4x_utts_s0", "esd", 0.1, split, 0.5, 0.5)
    summary = summarise(tmp_path, cfg)
    assert {p["scale"]: p["mean_diff"] for p in summary["curve"]} == pytest.approx({1: 0.02, 4: 0.10})
    assert "(grown in utterances;" in report_markdown(summary)


def test_ssl_ems_rows_are_paired_with_their_backbones_random_masking_row(tmp_path):
    mj, npc = BackboneSpec("mj", "ems_mockingjay_tiny", "u"), BackboneSpec("npc", "ems_npc_tiny", "u")
    cfg = SerStudyConfig(
        corpora=["cremad"],
        label_fractions=[0.1],
        splits=2,
        seeds=[0, 1],
        bootstrap=500,
        encoders=[EncoderSpec("spk", "speaker")],
        ssl_backbones=[mj, npc],
        ssl_rows=[
            RowSpec("mj_r", "mj", "random"),
            RowSpec("mj_e", "mj", "ems", "energy"),
            RowSpec("npc_r", "npc", "random"),
            RowSpec("npc_e", "npc", "ems", "energy"),
        ],
    )
    for seed in (0, 1):
        for split in range(2):
            shift = 0.1 * seed + 0.02 * split  # shared by both rows of a pair: cancels only if matched
            for label, ua in (("spk", 0.3), ("mj_r", 0.6), ("mj_e", 0.63), ("npc_r", 0.3), ("npc_e", 0.28)):
                _write(tmp_path, f"{label}_s{seed}", "cremad", 0.1, split, ua + shift, ua + shift)
    paired = summarise(tmp_path, cfg)["paired"]
    mj_e, npc_e = paired["mj_e"]["cremad/labels0.1"], paired["npc_e"]["cremad/labels0.1"]
    assert mj_e[SSL_MASKING_KEY]["baseline"] == "mj_r" and npc_e[SSL_MASKING_KEY]["baseline"] == "npc_r"
    assert mj_e[SSL_MASKING_KEY]["mean_diff"] == pytest.approx(0.03)
    assert mj_e[SSL_MASKING_KEY]["ci95"] == pytest.approx([0.03, 0.03]) and mj_e[SSL_MASKING_KEY]["n"] == 4
    assert npc_e[SSL_MASKING_KEY]["mean_diff"] == pytest.approx(-0.02)
    assert npc_e[SSL_MASKING_KEY]["wins_ties_losses"] == "0/0/4"
    assert mj_e["speaker_only"]["mean_diff"] == pytest.approx(0.33)  # still paired with the speaker encoder too
    # the random rows are the baselines, not paired with themselves; the speaker encoder has no SSL pair
    assert SSL_MASKING_KEY not in paired["mj_r"]["cremad/labels0.1"]
    assert "spk" not in paired
    text = report_markdown(summarise(tmp_path, cfg))
    assert "to its backbone's random-masking row" in text
    assert "| mj_e − mj_r | +3.0 [+3.0, +3.0] 4/0/0 |" in text and "| npc_e − npc_r | -2.0 [-2.0, -2.0] 0/0/4 |" in text


def _fake(root, kind, seed, files):
    for name in files:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"")
    (root / "SYNTHETIC_CORPUS.json").write_text(json.dumps({"kind": kind, "seed": seed, "size": "demo"}))
    return root


def test_pretraining_speakers_must_be_new(tmp_path):
    cremad = _fake(tmp_path / "cremad", "cremad", 0, [f"AudioWAV/{1001 + a}_IEO_NEU_XX.wav" for a in range(6)])
    other_seed = _fake(tmp_path / "pre1", "esd", 1, [f"{s:04d}/Neutral/{s:04d}_000001.wav" for s in range(1, 25)])
    check_new_speakers([other_seed], [cremad])
    same_seed = _fake(tmp_path / "pre0", "esd", 0, [f"{s:04d}/Neutral/{s:04d}_000001.wav" for s in range(11, 15)])
    with pytest.raises(UserFacingError, match="also speak in the SER corpus"):
        check_new_speakers([other_seed, same_seed], [cremad])


def test_strengthnet_is_not_trained_on_speakers_of_the_ser_corpora(tmp_path):
    out = tmp_path / "study"
    # the StrengthNet corpus is generated with seed + 2; SER corpora generated with that same seed (here: faked so)
    # share their first speakers with it
    _fake(out / "corpora" / "cremad", "cremad", 2, [f"AudioWAV/{1001 + a}_IEO_NEU_XX.wav" for a in range(6)])
    esd_files = [f"{s:04d}/Neutral/{s:04d}_000001.wav" for s in range(11, 15)]
    _fake(out / "corpora" / "strengthnet_esd", "esd", 2, esd_files)
    cfg = SerStudyConfig(
        corpora=["cremad"],
        ssl_backbones=[BackboneSpec("mockingjay", "ems_mockingjay_tiny", "ems_mockingjay_local")],
        ssl_rows=[RowSpec("m", "mockingjay", "ems", "strengthnet")],
    )
    stage = next(s for s in build_stages(cfg, out) if s.name == "ssl_strengthnet")
    with pytest.raises(UserFacingError, match="StrengthNet training speaker.*also speak in the SER corpus"):
        stage.run()
    assert not (out / "ssl" / "strengthnet").exists()  # refused before training
    # a kept StrengthNet corpus of another seed than the study asks for is refused before anything reads it
    _fake(out / "corpora" / "strengthnet_esd", "esd", 0, esd_files)
    with pytest.raises(UserFacingError, match="strengthnet_esd: kept corpus .*seed: 0 there, 2 asked"):
        stage.run()


def test_esd_reads_a_folder_with_more_than_the_release_speakers_whole(tmp_path):
    assert esd.speaker_ids("auto", [f"{s:04d}" for s in range(1, 21)]) == [f"{s:04d}" for s in range(11, 21)]
    assert esd.speaker_ids("auto", [f"{s:04d}" for s in range(1, 41)]) == [f"{s:04d}" for s in range(1, 41)]
    assert esd.speaker_ids("english", [f"{s:04d}" for s in range(1, 41)]) == [f"{s:04d}" for s in range(11, 21)]


def test_multitask_schedules():
    assert multitask_weights("sum", 0.5, 0, 0) == (1.0, 0.5)
    assert [multitask_weights("alternate", 0.5, 0, s) for s in range(3)] == [(1.0, 0.0), (0.0, 0.5), (1.0, 0.0)]
    assert multitask_weights("sum", 0.5, 10, 4) == pytest.approx((1.0, 0.25))
    assert multitask_weights("balanced", 0.5, 10, 20) == (1.0, 0.5)
    with pytest.raises(ValueError, match="combine"):
        ContrastiveObjective(combine="mean")
    with pytest.raises(ValueError, match="warmup"):
        ContrastiveObjective(speaker_warmup_steps=-1)


@pytest.mark.slow
def test_quick_study_runs_every_stage_and_reports(tmp_path):
    text = run_ser_study(tmp_path / "study", quick=True)
    report = tmp_path / "study" / "report"
    summary = json.loads((report / "ser_study.json").read_text())
    assert set(summary["table"]) == {"random_init", "speaker_only", "contrastive", "contrastive@6x", "mockingjay_ems"}
    assert all(row["ravdess/labels0.5"]["n"] == 4 for row in summary["table"].values())  # 2 seeds x 2 splits
    assert set(summary["paired"]["contrastive"]["ravdess/labels0.5"]) == {"speaker_only", "random_init"}
    assert {p["scale"] for p in summary["curve"]} == {1, 6}
    assert summary["pretrain_hours"]["6"] > 4 * summary["pretrain_hours"]["1"]
    for png in ("ser_study.png", "ser_study_curve.png"):
        assert (report / png).read_bytes()[:4] == b"\x89PNG"
    assert "| speaker_only |" in text and "| ser_s1 |" in text and "Unlabelled-data curve" in text
    # the EMS row's intensities: a StrengthNet of its own corpus (another seed than every reported corpus)
    corpora = tmp_path / "study" / "corpora"
    markers = {p.parent.name: json.loads(p.read_text())["seed"] for p in corpora.glob("*/SYNTHETIC_CORPUS.json")}
    assert markers.pop("strengthnet_esd") not in set(markers.values()) and "ravdess" in markers
    trained = json.loads((tmp_path / "study" / "stages" / "ssl_strengthnet.json").read_text())["summary"]
    assert 0.0 <= trained["auc_emotional_vs_neutral"] <= 1.0
    cache = IntensityCache(tmp_path / "study" / "ssl" / "intensity" / "strengthnet")
    checkpoint = tmp_path / "study" / "ssl" / "strengthnet" / "strengthnet.ckpt"
    assert cache.source == "strengthnet" and cache.model["checkpoint_sha256"] == file_sha256(checkpoint)
    assert len(cache) == len(read_corpus(corpora / "pretrain_esd_x1"))
    shown = json.loads((tmp_path / "study" / "stages" / "ssl_intensity_strengthnet.json").read_text())["summary"]
    assert open(shown["distribution"]["histogram"], "rb").read(4) == b"\x89PNG"
    assert "| ssl_strengthnet |" in text and "| ssl_intensity_strengthnet |" in text
    # independent stages ran side by side, each in a process of its own with its log
    stages = tmp_path / "study" / "stages"
    assert all(
        (stages / f"{name}.log").is_file()
        for name in ("speaker_encoder_s1", "clusters_x6_s0", "pretrain_contrastive_s1")
    )
    assert not (stages / "ser_s0.log").exists() and "| wall time (stages side by side) |" in text


def test_multitask_combine_sets_what_each_step_optimises(tmp_path):
    from types import SimpleNamespace

    import torch

    from s3prl_emoaware.contrastive.tasks import ContrastiveTask
    from s3prl_emoaware.pretraining.data import Batch

    ids = [f"u{i}" for i in range(8)]
    speakers = ["a"] * 4 + ["b"] * 4
    clusters = tmp_path / "assignments.json"
    clusters.write_text(json.dumps({"clusters": {u: i % 2 for i, u in enumerate(ids)}}))
    model = {
        "channels": [8, 8, 8, 8, 24],
        "attention_channels": 4,
        "res2net_scale": 2,
        "se_channels": 4,
        "embedding_dim": 8,
    }
    torch.manual_seed(0)
    batch = Batch(torch.randn(8, 30, 20), torch.full((8,), 30), None, None, ids, speakers)
    items = [SimpleNamespace(utt_id=u, speaker=s) for u, s in zip(ids, speakers)]

    def losses(**objective):
        task = ContrastiveTask(model, 20, {"clusters": str(clusters), "speaker_weight": 0.5, **objective})
        torch.manual_seed(1)
        net = task.build_model(items)
        out = []
        for step in (0, 1):
            task.step = step
            loss, logs = task.loss(net, batch, None)
            out.append((loss.item(), logs["contrastive"], logs["speaker_ce"]))
        return out

    (s0, con, ce), _ = losses()
    assert s0 == pytest.approx(con + 0.5 * ce, rel=1e-5)
    (a0, con, _), (a1, _, ce1) = losses(combine="alternate")
    assert a0 == pytest.approx(con, rel=1e-5) and a1 == pytest.approx(0.5 * ce1, rel=1e-5)
    (b0, con, _), _ = losses(combine="balanced")
    assert b0 == pytest.approx(1.5 * con, rel=1e-5)  # the speaker term scaled to the contrastive loss's size
    (w0, con, ce), (w1, con1, ce1) = losses(speaker_warmup_steps=2)
    assert w0 == pytest.approx(con + 0.25 * ce, rel=1e-5) and w1 == pytest.approx(con1 + 0.5 * ce1, rel=1e-5)


def test_ecapa_feature_selects_what_the_runner_reads_of_ecapa_rows_only(tmp_path):
    from s3prl_emoaware.demo import ser_study
    from s3prl_emoaware.demo.downstream import runner_steps

    mj = BackboneSpec("mj", "ems_mockingjay_tiny", "ems_mockingjay_local")
    common = dict(
        corpora=["cremad"],
        splits=1,
        seeds=[0],
        encoders=[EncoderSpec("spk", "speaker"), EncoderSpec("con", "contrastive")],
        ssl_backbones=[mj],
        ssl_rows=[RowSpec("mj_random", "mj", "random")],
    )
    with pytest.raises(ValueError, match="ecapa_feature"):
        SerStudyConfig(ecapa_feature="pooled", **common)

    def argv_of(cfg):
        tasks = ser_tasks(cfg, tmp_path)
        got = {}
        for run in study_runs(cfg):
            argv = runner_steps(ser_study._upstream(cfg, run, tmp_path), tasks, tmp_path / "ser")[0]["argv"]
            got[run.label] = argv[argv.index("-s") + 1] if "-s" in argv else None
        return got

    assert argv_of(SerStudyConfig(**common)) == {"spk": None, "con": None, "mj_random": None}
    chosen = argv_of(SerStudyConfig(ecapa_feature="utterance_embedding", **common))
    assert chosen == {"spk": "utterance_embedding", "con": "utterance_embedding", "mj_random": None}


def test_a_contrastive_row_can_start_from_the_untrained_encoder(tmp_path, monkeypatch):
    encoders = (
        "encoders=[{label: speaker_only, init: speaker}, {label: contrastive, init: contrastive}, "
        "{label: contrastive_scratch, init: contrastive, start: random}]"
    )
    cfg = load_study_config(
        quick=False, overrides=["seeds=[0,1]", "unlabeled_scales=[1]", encoders, "ssl_rows=[]", "curve_encoders=[]"]
    )
    stages = build_stages(cfg, tmp_path)
    groups = {s.name: s.group for s in stages}
    # no random_init row, yet its untrained encoders are made, before the pre-trainings that start from them
    assert groups["random_init_s1"] == "from_corpora" and groups["pretrain_contrastive_scratch_s1"] == "pretrain"
    started = {}  # the recipe each pre-training would run (the run itself is replaced)
    monkeypatch.setattr(
        "s3prl_emoaware.pretraining.run.pretrain",
        lambda recipe, corpus, out, intensity, device: started.setdefault(out.name, recipe) and (None, [(0, 1.0)]),
    )
    for stage in stages:
        if stage.name in ("pretrain_contrastive_s1", "pretrain_contrastive_scratch_s1"):
            stage.run()
    init = {name: recipe.objective_config.init_from for name, recipe in started.items()}
    assert init["contrastive_s1"] == str(tmp_path / "encoders" / "s1" / "speaker_encoder" / "last.ckpt")
    assert init["contrastive_scratch_s1"] == str(tmp_path / "random_init" / "s1" / "last.ckpt")
    with pytest.raises(ValueError, match="start must be speaker or random"):
        EncoderSpec("x", "contrastive", start="noise")
    with pytest.raises(ValueError, match="start applies to contrastive rows only"):
        EncoderSpec("x", "speaker", start="random")
