"""ems-study: paired bootstrap, oracle intensity, report summary, and the quick study end to end."""

import json

import numpy as np
import pytest

from s3prl_emoaware.demo.ems_study import (
    BackboneSpec,
    EmsStudyConfig,
    RowSpec,
    baseline_of,
    load_study_config,
    oracle_curve,
    run_ems_study,
)
from s3prl_emoaware.utils.stats import clustered_bootstrap, paired_bootstrap, wins_ties_losses


def test_paired_bootstrap_interval_of_a_hand_made_set():
    diffs = [0.02, 0.05, -0.01, 0.04, 0.03, 0.06, 0.00, 0.05, 0.02, 0.04]
    mean, lo, hi = paired_bootstrap(diffs, resamples=20000, seed=1)
    assert mean == pytest.approx(0.03)
    # the percentile interval of the mean is close to mean +- 1.96 * sd / sqrt(n) for this near-normal set
    half = 1.96 * np.std(diffs) / np.sqrt(len(diffs))
    assert lo == pytest.approx(0.03 - half, abs=0.003) and hi == pytest.approx(0.03 + half, abs=0.003)
    assert lo > 0  # excludes 0
    assert paired_bootstrap([0.01] * 6) == pytest.approx((0.01, 0.01, 0.01))
    with pytest.raises(ValueError):
        paired_bootstrap([])
    assert wins_ties_losses([0.1, 0.0, -0.2, 0.3]) == "2/1/1"
    assert wins_ties_losses([0.1, 0.0, -0.2, 0.3], higher_is_better=False) == "1/1/2"  # PER: lower wins


def test_clustered_bootstrap_keeps_the_seed_to_seed_spread_that_a_flat_one_loses():
    # three seeds whose folds agree with each other and not across seeds: the seed is the unit
    groups = {0: [0.01] * 5, 1: [-0.01] * 5, 2: [0.03] * 5}
    flat = paired_bootstrap([d for v in groups.values() for d in v], resamples=20000)
    mean, lo, hi = clustered_bootstrap(groups, resamples=20000)
    assert mean == pytest.approx(0.01) and flat[0] == pytest.approx(0.01)
    assert flat[1] > 0  # 15 "independent" pairs: the flat interval excludes 0
    # three seeds drawn with replacement: all-(-0.01) has probability 1/27 > 2.5 %, all-0.03 too
    assert lo == pytest.approx(-0.01) and hi == pytest.approx(0.03)
    # one difference per group (PR, IC): the flat bootstrap over the groups
    single = [0.02, 0.05, -0.01, 0.04, 0.03, 0.06, 0.00, 0.05, 0.02, 0.04]
    _, lo, hi = clustered_bootstrap({i: [d] for i, d in enumerate(single)}, resamples=20000)
    half = 1.96 * np.std(single) / np.sqrt(len(single))
    assert lo == pytest.approx(0.03 - half, abs=0.003) and hi == pytest.approx(0.03 + half, abs=0.003)
    # spread inside the seeds widens the interval beyond the spread of the seed means
    # (same seed means 0.01, -0.01, 0.03, whose interval alone is [-0.01, 0.03])
    _, lo_in, hi_in = clustered_bootstrap({0: [-0.02, 0.04], 1: [-0.04, 0.02], 2: [0.0, 0.06]}, resamples=20000)
    assert lo_in < -0.015 and hi_in > 0.035
    with pytest.raises(ValueError):
        clustered_bootstrap({0: []})
    # pairs are the (seed, fold) keys both sides have; none shared, no pairing
    from s3prl_emoaware.utils.stats import paired_by_seed

    assert paired_by_seed({(0, 1): 0.5}, {(1, 1): 0.4}) is None
    pair = paired_by_seed({(0, 1): 0.5, (0, 2): 0.6, (1, 1): 0.7}, {(0, 1): 0.4, (0, 2): 0.4, (2, 1): 0.1})
    assert pair["n"] == 2 and pair["per_seed"] == pytest.approx({"0": 0.15}) and pair["wins_ties_losses"] == "2/0/0"
    # per-seed means in seed order: 16 seeds read 0, 1, 2, ..., 15 (not 0, 1, 10, 11, ... as text sorts them)
    ours = {(seed, fold): float(seed) for seed in range(16) for fold in (1, 2)}
    theirs = {key: 0.0 for key in ours}
    pair = paired_by_seed(ours, theirs, resamples=100)
    assert list(pair["per_seed"]) == [str(seed) for seed in range(16)]
    assert list(pair["per_seed"].values()) == [float(seed) for seed in range(16)]


def test_pretraining_seeds_take_the_strengthnets_in_turn(tmp_path):
    from s3prl_emoaware.demo.ems_study import _intensity_dir, build_stages, strengthnet_seed_of

    bb = [BackboneSpec("mockingjay", "ems_mockingjay_tiny", "ems_mockingjay_local")]
    rows = [RowSpec("mj_random", "mockingjay", "random"), RowSpec("mj_ems", "mockingjay", "ems", "strengthnet")]
    cfg = EmsStudyConfig(backbones=bb, rows=rows, seeds=[5, 6, 7, 8, 9], strengthnet_seeds=[0, 1, 2])
    assert [strengthnet_seed_of(cfg, s) for s in cfg.seeds] == [0, 1, 2, 0, 1]
    assert _intensity_dir(cfg, rows[1], 8, tmp_path) == str(tmp_path / "intensity" / "strengthnet_s0")
    assert _intensity_dir(cfg, rows[0], 8, tmp_path) is None
    names = [s.name for s in build_stages(cfg, tmp_path)]
    assert [n for n in names if n.startswith("strengthnet")] == ["strengthnet_s0", "strengthnet_s1", "strengthnet_s2"]
    assert names.index("strengthnet_s2") < names.index("intensity") < names.index("pretrain_mj_ems_s5")
    # null: the one StrengthNet of the recipe's seed, shared, in the layout of ser-study's SSL rows
    shared = EmsStudyConfig(backbones=bb, rows=rows, seeds=[5, 6], strengthnet_seeds=None)
    assert strengthnet_seed_of(shared, 6) is None
    assert _intensity_dir(shared, rows[1], 6, tmp_path) == str(tmp_path / "intensity" / "strengthnet")
    assert [s.name for s in build_stages(shared, tmp_path) if s.name.startswith("strengthnet")] == ["strengthnet"]
    with pytest.raises(ValueError, match="strengthnet_seeds"):
        EmsStudyConfig(backbones=bb, rows=rows, strengthnet_seeds=[1, 1])


def test_a_row_is_also_paired_with_the_rows_it_names(tmp_path, monkeypatch):
    from s3prl_emoaware.demo import ems_study

    bb = [BackboneSpec("mockingjay", "ems_mockingjay_tiny", "ems_mockingjay_local")]
    rows = [
        RowSpec("mj_random", "mockingjay", "random"),
        RowSpec("mj_uniform", "mockingjay", "ems", "oracle", ["masking.sharpness=0"]),
        RowSpec("mj_ems", "mockingjay", "ems", "oracle", also_against=["mj_uniform"]),
    ]
    cfg = EmsStudyConfig(backbones=bb, rows=rows, seeds=[0, 1], folds=2, bootstrap=500)
    acc = {"mj_random": 0.50, "mj_uniform": 0.47, "mj_ems": 0.52}

    def scores(out, run):
        label, seed = run.rsplit("_s", 1)
        return {("emotion/acc", f"fold{f}"): acc[label] + 0.01 * int(seed) for f in (1, 2)}

    monkeypatch.setattr(ems_study, "_scores", scores)
    monkeypatch.setattr(ems_study, "_loss_levels", lambda cfg, out: {})
    summary = ems_study.summarise(cfg, tmp_path)
    assert summary["paired"]["mj_ems"]["emotion/acc"]["mean_diff"] == pytest.approx(0.02)  # vs random, as before
    extra = summary["further"]["mj_ems"]["mj_uniform"]["emotion/acc"]
    assert extra["mean_diff"] == pytest.approx(0.05) and extra["n"] == 4 and extra["wins_ties_losses"] == "4/0/0"
    assert set(summary["further"]) == {"mj_ems"}
    text = ems_study.report_markdown(summary, {})
    assert "| mj_ems | mj_uniform | emotion +5.00 [+5.00, +5.00] 4/0/0 (per seed: +5.0 +5.0) |" in text
    with pytest.raises(ValueError, match="unknown baseline row 'mj_flat'"):
        EmsStudyConfig(backbones=bb, rows=[*rows[:2], RowSpec("mj_ems", "mockingjay", "ems", also_against=["mj_flat"])])


def test_oracle_curve_marks_the_emotional_segment():
    centres = np.arange(100) * 0.01 + 0.0125
    curve = oracle_curve(100, (0.30, 0.60), True, centres)
    assert curve[:29].sum() == 0 and curve[30:59].all() and curve[60:].sum() == 0
    assert oracle_curve(5, None, False, centres).sum() == 0
    assert oracle_curve(5, None, True, centres).tolist() == [1.0] * 5


def test_config_refuses_unknown_backbones_and_duplicate_rows():
    bb = [BackboneSpec("mockingjay", "ems_mockingjay_tiny", "ems_mockingjay_local")]
    with pytest.raises(ValueError, match="unknown backbone"):
        EmsStudyConfig(backbones=bb, rows=[RowSpec("a", "npc", "random")])
    with pytest.raises(ValueError, match="unique"):
        EmsStudyConfig(backbones=bb, rows=[RowSpec("a", "mockingjay", "random"), RowSpec("a", "mockingjay", "ems")])
    with pytest.raises(ValueError, match="intensity"):
        RowSpec("a", "mockingjay", "ems", intensity="psychic")
    with pytest.raises(ValueError, match="emotion_utts_per_speaker"):
        EmsStudyConfig(backbones=bb, emotion_utts_per_speaker=0)


def test_a_larger_labelled_set_reaches_only_the_labelled_corpus(tmp_path, monkeypatch):
    from s3prl_emoaware.demo import ems_study

    asked = {}
    monkeypatch.setattr(ems_study, "synthesize_missing", lambda plan, size, options=None: asked.update(options or {}))
    ems_study._synthesise(load_study_config(True, ["emotion_utts_per_speaker=12"]), tmp_path)
    assert asked == {"iemocap": {"utts_per_speaker": 12}}  # the pre-training and StrengthNet corpora keep the preset
    asked.clear()
    ems_study._synthesise(load_study_config(True), tmp_path)
    assert asked == {}


def test_every_row_is_paired_with_its_backbones_first_random_row_unless_told():
    bb = [BackboneSpec(n, f"ems_{n}_tiny", f"ems_{n}_local") for n in ("mockingjay", "npc")]
    rows = [
        RowSpec("mj_ems", "mockingjay", "ems"),
        RowSpec("mj_random", "mockingjay", "random"),
        RowSpec("mj_random_r40", "mockingjay", "random", overrides=["masking.mask_ratio=0.4"]),
        RowSpec("mj_ems_r40", "mockingjay", "ems", overrides=["masking.mask_ratio=0.4"], baseline="mj_random_r40"),
        RowSpec("npc_ems", "npc", "ems"),
    ]
    cfg = EmsStudyConfig(backbones=bb, rows=rows)
    assert [baseline_of(cfg, r) for r in rows] == ["mj_random", None, "mj_random", "mj_random_r40", None]


def test_summary_counts_a_lower_per_as_a_win(tmp_path, monkeypatch):
    from s3prl_emoaware.demo import ems_study

    bb = [BackboneSpec("mockingjay", "ems_mockingjay_tiny", "ems_mockingjay_local")]
    rows = [RowSpec("mj_random", "mockingjay", "random"), RowSpec("mj_ems", "mockingjay", "ems")]
    cfg = EmsStudyConfig(backbones=bb, rows=rows, seeds=[0, 1, 2], bootstrap=200)
    per = {"mj_random": [0.60, 0.50, 0.70], "mj_ems": [0.55, 0.45, 0.80]}
    acc = {"mj_random": [0.60, 0.50, 0.70], "mj_ems": [0.65, 0.50, 0.60]}

    def scores(out, run):
        label, seed = run.rsplit("_s", 1)
        return {
            ("phoneme_recognition/per", None): per[label][int(seed)],
            ("fluent_commands/acc", None): acc[label][int(seed)],
        }

    monkeypatch.setattr(ems_study, "_scores", scores)
    monkeypatch.setattr(ems_study, "_loss_levels", lambda cfg, out: {})
    paired = ems_study.summarise(cfg, tmp_path)["paired"]["mj_ems"]
    assert paired["phoneme_recognition/per"]["wins_ties_losses"] == "2/0/1"  # 0.55 < 0.60 wins, 0.80 loses
    assert paired["fluent_commands/acc"]["wins_ties_losses"] == "1/1/1"
    assert paired["fluent_commands/acc"]["per_seed"] == pytest.approx({"0": 0.05, "1": 0.0, "2": -0.10})


def test_summary_resamples_seeds_with_their_folds(tmp_path, monkeypatch):
    from s3prl_emoaware.demo import ems_study

    bb = [BackboneSpec("mockingjay", "ems_mockingjay_tiny", "ems_mockingjay_local")]
    rows = [RowSpec("mj_random", "mockingjay", "random"), RowSpec("mj_ems", "mockingjay", "ems")]
    cfg = EmsStudyConfig(backbones=bb, rows=rows, seeds=[0, 1, 2], folds=4, bootstrap=2000)
    gain = {0: 0.04, 1: -0.02, 2: 0.01}  # the same on every fold of a seed

    def scores(out, run):
        label, seed = run.rsplit("_s", 1)
        extra = gain[int(seed)] if label == "mj_ems" else 0.0
        return {("emotion/acc", f"fold{f}"): 0.5 + 0.01 * f + extra for f in range(1, 5)}

    monkeypatch.setattr(ems_study, "_scores", scores)
    monkeypatch.setattr(ems_study, "_loss_levels", lambda cfg, out: {})
    summary = ems_study.summarise(cfg, tmp_path)
    paired = summary["paired"]["mj_ems"]["emotion/acc"]
    assert paired["n"] == 12 and paired["per_seed"] == pytest.approx({"0": 0.04, "1": -0.02, "2": 0.01})
    assert paired["ci95"][0] == pytest.approx(-0.02) and paired["ci95"][1] == pytest.approx(0.04)
    text = ems_study.report_markdown(summary, {}, {"s0": {"localisation_spliced": 0.8}, "s1": {}})
    assert "(per seed: +4.0 -2.0 +1.0)" in text and "Further pairs" not in text
    assert "StrengthNet s0 (held-out" in text and "**Below target: localisation_spliced.**" in text
    assert "Every seed here shares" not in text  # two StrengthNets: none is shared by all


def test_shipped_study_crosses_seeds_and_folds_with_every_strategy():
    cfg = load_study_config(quick=False)
    assert len(cfg.seeds) >= 3 and cfg.folds == 5
    for backbone in ("mockingjay", "npc"):
        rows = {(r.masking, r.intensity) for r in cfg.rows if r.backbone == backbone}
        assert rows == {("random", "none"), ("ems_topk", "strengthnet"), ("ems", "strengthnet"), ("ems", "oracle")}


def test_scores_leave_out_the_runs_another_learning_rate_beat_on_dev(tmp_path):
    import yaml

    from s3prl_emoaware.demo.ems_study import _scores

    for lr, hyp, dev in (("lr0.01", "a b", 0.9), ("lr0.03", "a b c d", 0.4)):
        run = tmp_path / "downstream" / "npc_ems_s0" / "phoneme_recognition" / lr
        run.mkdir(parents=True)
        args = {"mode": "train", "upstream": "ems_npc_local", "downstream": "phoneme_recognition"}
        (run / "args_2026-01-01-00-00-00.yaml").write_text(yaml.dump(args))
        (run / "test-hyp.ark").write_text(f"x1 {hyp}\n")
        (run / "test-ref.ark").write_text("x1 a b c d\n")
        (run / "dev_best.json").write_text(json.dumps({"metric": "per", "value": dev, "higher_is_better": False}))
    from s3prl_emoaware.downstreams.scoring import select_by_dev

    runs = sorted((tmp_path / "downstream" / "npc_ems_s0" / "phoneme_recognition").iterdir())
    select_by_dev(runs)
    assert _scores(tmp_path, "npc_ems_s0") == {("phoneme_recognition/per", None): 0.0}  # lr0.03: dev 0.4, test 0
    (runs[1] / "dev_best.json").write_text(json.dumps({"metric": "per", "value": 0.95, "higher_is_better": False}))
    select_by_dev(runs)
    # lr0.01 now (were the loser read too, the folder read last, lr0.03, would answer 0.0)
    assert _scores(tmp_path, "npc_ems_s0") == {("phoneme_recognition/per", None): 0.5}


@pytest.mark.slow
def test_quick_study_runs_end_to_end_and_resumes(tmp_path):
    out = tmp_path / "study"
    text = run_ems_study(out, quick=True)
    report = json.loads((out / "report" / "ems_study.json").read_text())
    cfg = load_study_config(quick=True)
    assert set(report["table"]) == {r.label for r in cfg.rows}
    for row in cfg.rows:
        assert report["table"][row.label]["emotion/acc"]["n"] == len(cfg.seeds) * cfg.folds
    paired = report["paired"]["npc_ems"]["emotion/acc"]
    assert paired["baseline"] == "npc_random" and paired["n"] == len(cfg.seeds) * cfg.folds
    assert paired["ci95"][0] <= paired["mean_diff"] <= paired["ci95"][1]
    masks = report["masks"]
    # the default EMS spends random masking's budget; the authors' rule spends far less and never moves
    assert abs(masks["mockingjay_ems_oracle"]["masked_fraction"] - masks["mockingjay_random"]["masked_fraction"]) < 0.01
    assert masks["mockingjay_ems_topk"]["masked_fraction"] < 0.7 * masks["mockingjay_random"]["masked_fraction"]
    # by kind of frame: the oracle masks emotional speech more often than other speech; random masking does not
    oracle_rates, random_rates = masks["mockingjay_ems_oracle"], masks["mockingjay_random"]
    assert oracle_rates["rate_emotional_speech"] > 1.5 * oracle_rates["rate_other_speech"]
    assert abs(random_rates["rate_emotional_speech"] / random_rates["rate_other_speech"] - 1) < 0.2
    assert masks["mockingjay_ems_topk"]["coverage_3_epochs"] == pytest.approx(
        masks["mockingjay_ems_topk"]["coverage_1_epoch"]
    )
    # with the oracle, the masks go where the emotion is
    assert (
        masks["mockingjay_ems_oracle"]["inside_emotional_segments"]
        > masks["mockingjay_random"]["inside_emotional_segments"] + 0.05
    )
    assert (out / "report" / "ems_study.png").stat().st_size > 0 and "Δ vs random" in text
    # what feeds the masker is shown before it is trusted: StrengthNet's distribution and its histogram
    intensities = json.loads((out / "stages" / "intensity.json").read_text())["summary"]
    shown = intensities["strengthnet_s0"]["distribution"]
    assert shown["n_neutral"] > 0 and shown["n_emotional"] > 0 and "level_difference" in shown
    assert open(shown["histogram"], "rb").read(4) == b"\x89PNG"
    # one StrengthNet per pre-training seed, each with its own curves
    from s3prl_emoaware.intensity.cache import IntensityCache

    assert cfg.strengthnet_seeds == [0, 1] and "strengthnet_s1" in intensities
    first, second = (IntensityCache(out / "intensity" / f"strengthnet_s{k}") for k in (0, 1))
    utt = next(iter(first.items))
    assert not np.allclose(first.get(utt), second.get(utt))
    assert "StrengthNet s1 (held-out" in text
    # the masks of a StrengthNet row are shown with every StrengthNet, at the same budget
    other = masks["npc_ems (strengthnet_s1)"]
    assert other["masked_fraction"] == pytest.approx(masks["npc_ems"]["masked_fraction"], abs=0.01)
    assert other["top_quartile_share"] != masks["npc_ems"]["top_quartile_share"]
    # the pre-trainings ran side by side, each in a process of its own with its log
    assert {p.stem for p in (out / "stages").glob("*.log")} == {
        f"pretrain_{r.label}_s{s}" for r in cfg.rows for s in cfg.seeds
    } | {f"strengthnet_s{k}" for k in cfg.strengthnet_seeds}
    assert "| wall time (stages side by side) |" in text
    markers = {p.name: p.stat().st_mtime_ns for p in (out / "stages").glob("*.json")}
    run_ems_study(out, quick=True)  # everything done: nothing re-runs
    assert {p.name: p.stat().st_mtime_ns for p in (out / "stages").glob("*.json")} == markers


def test_the_report_names_a_strengthnet_below_its_targets():
    from s3prl_emoaware.demo.ems_study import strengthnet_lines

    good = {"auc_emotional_vs_neutral": 0.99, "level_difference": 0.57, "localisation_spliced": 0.98}
    text = "\n".join(strengthnet_lines(good))
    assert "localisation_spliced 0.98 (target 0.9)" in text and "Below target" not in text
    weak = {**good, "localisation_spliced": 0.77}  # the StrengthNet under which Mockingjay EMS lost its gain
    text = "\n".join(strengthnet_lines(weak))
    assert (
        "**Below target: localisation_spliced.**" in text and "auc_emotional_vs_neutral" not in text.split("Below")[1]
    )


def test_default_study_runs_pr_and_ic_at_the_demos_steps():
    """PR and IC judge a masker's cost only off IC chance and CTC's all-deletion plateau: the default
    study takes the demo's steps for both (DownstreamSizes' 150 IC steps left Mockingjay at chance)."""
    from s3prl_emoaware.demo.pipeline import DownstreamSizes, load_demo_config

    study, demo = load_study_config(quick=False).sizes, load_demo_config(quick=False).sizes
    assert study.phoneme_recognition == demo.phoneme_recognition
    assert study.fluent_commands == demo.fluent_commands
    assert "total_steps=1000" in study.fluent_commands
    assert study.emotion == DownstreamSizes().emotion  # the emotion rows stay comparable with earlier runs


@pytest.mark.parametrize("drop", [False, True])
def test_a_finished_downstream_stage_drops_its_hidden_states_when_asked(tmp_path, monkeypatch, drop):
    from test_hidden_cache import _checkpoint, _filled_store

    from s3prl_emoaware.demo import ems_study

    cfg = load_study_config(True, [f"drop_hidden_states={str(drop).lower()}"])
    cache = tmp_path / "downstream" / "hidden_cache"
    for run in ("mockingjay_random_s0", "mockingjay_random_s1"):
        (tmp_path / "pretrain" / run).mkdir(parents=True)
        _checkpoint(tmp_path / "pretrain" / run / "last.ckpt", seed=int(run[-1]))
    other = _filled_store(cache, tmp_path / "pretrain" / "mockingjay_random_s1" / "last.ckpt")

    def runs_and_caches(up, tasks, out, device, workers):  # what the runner leaves: this upstream's entries
        _filled_store(out / "hidden_cache", up.ckpt)
        return {"runs": 1}

    monkeypatch.setattr(ems_study, "run_upstream", runs_and_caches)
    stage = {s.name: s for s in ems_study.build_stages(cfg, tmp_path)}["downstream_mockingjay_random_s0"]
    summary = stage.run()
    left = {p.parent.name for p in cache.glob("*/meta.json")}
    if drop:
        assert summary["hidden_states_dropped"]["folders"] == 1 and summary["hidden_states_dropped"]["bytes"] > 0
        assert left == {other.dir.name}  # the upstream still to run keeps its states
    else:
        assert "hidden_states_dropped" not in summary and len(left) == 2


def test_strengthnets_train_beside_the_pretrainings_that_read_no_intensity(tmp_path):
    from s3prl_emoaware.demo.ems_study import build_stages
    from s3prl_emoaware.demo.stages import _blocks

    cfg = load_study_config(quick=False)
    stages = build_stages(cfg, tmp_path)
    names = [s.name for s in stages]
    first = next(b for b in _blocks(stages) if len(b) > 1)  # the first stages that run side by side
    unguided = {f"pretrain_{r.label}_s{s}" for r in cfg.rows if r.masking == "random" for s in cfg.seeds}
    assert [s.name for s in first] == [f"strengthnet_s{k}" for k in cfg.strengthnet_seeds] + [
        n for n in names if n in unguided
    ]
    # every pre-training that reads an intensity comes after the stage that writes them
    guided = [n for n in names if n.startswith("pretrain_") and n not in unguided]
    assert len(guided) == len(cfg.rows) * len(cfg.seeds) - len(unguided) > 0
    assert min(names.index(n) for n in guided) > names.index("intensity") > max(names.index(n) for n in unguided)


def test_mask_report_draws_a_batch_budget_by_batches_of_the_pretraining_size():
    import copy

    from s3prl_emoaware.demo.ems_study import _recipe, _simulate_masks

    cfg = load_study_config(quick=True)
    row = next(r for r in cfg.rows if r.masking == "ems" and r.intensity == "oracle")
    recipe = copy.deepcopy(_recipe(cfg, row, cfg.seeds[0]))
    recipe.training.batch_size = 4

    rng = np.random.default_rng(0)
    energies, curves = {}, {}
    for i in range(16):  # speech everywhere (loud frames with a quiet lead-in); odd utterances emotional at 100-300
        n = 300 + 10 * i
        energies[f"u{i}"] = np.r_[np.full(10, -10.0), rng.normal(0, 0.1, n - 10)]
        curves[f"u{i}"] = np.zeros(n) if i % 2 == 0 else np.r_[np.zeros(100), np.ones(200), np.zeros(n - 300)]
    per_utt = _simulate_masks(cfg, recipe, energies, curves, curves, curves)
    recipe.masking.budget_scope = "batch"
    per_batch = _simulate_masks(cfg, recipe, energies, curves, curves, curves)
    assert per_batch["masked_fraction"] == pytest.approx(per_utt["masked_fraction"], abs=0.01)
    # the neutral utterances' budget goes to the emotional ones: other speech almost never masked
    assert per_utt["rate_other_speech"] > 0.05 and per_batch["rate_other_speech"] < 0.5 * per_utt["rate_other_speech"]
    assert per_batch["rate_emotional_speech"] > per_utt["rate_emotional_speech"] + 0.03
