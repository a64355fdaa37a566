"""NPC: masked convolutions never see the centre, s3prl equivalence both ways, EMS variants, pre-training."""

import pytest
import torch

from s3prl_emoaware.config import load_config, shipped_config, to_dict
from s3prl_emoaware.features import FbankConfig
from s3prl_emoaware.intensity.extract import extract_intensities
from s3prl_emoaware.models.npc import NPCConfig, NPCModel
from s3prl_emoaware.pretraining.run import pretrain
from s3prl_emoaware.pretraining.trainer import PretrainRecipe
from s3prl_emoaware.s3prl_adapters.npc_interop import from_s3prl_npc, to_s3prl_npc

TINY = NPCConfig(hidden_size=16, n_blocks=2, kernel_size=15, mask_size=7, vq_codebook_sizes=[8, 8], vq_code_dims=[8, 8])
FBANK = FbankConfig(window_type="hamming", cmvn=True)


def test_prediction_of_a_frame_ignores_the_frame_and_its_neighbours():
    torch.manual_seed(0)
    model = NPCModel(TINY).eval()
    x = torch.randn(1, 60, 80)
    y = x.clone()
    y[0, 30 - 3 : 30 + 4] += torch.randn(7, 80)  # change the 7 frames around frame 30 (the input mask)
    with torch.no_grad():
        a, b = model.encode(x)[0], model.encode(y)[0]
    assert torch.allclose(a[0, 30], b[0, 30], atol=1e-6)  # the representation of frame 30 did not see them
    assert not torch.allclose(a[0, 33], b[0, 33])  # its neighbours' representations did
    with pytest.raises(ValueError, match="kernel_size"):
        NPCConfig(kernel_size=15, mask_size=7, n_blocks=4)


def _register():
    import s3prl_emoaware

    s3prl_emoaware.register()
    import s3prl.hub

    return s3prl.hub


def _max_diff(a, b):
    torch.manual_seed(1)
    wavs = [torch.randn(16000 * 2) * 0.1]
    with torch.no_grad():
        ha, hb = a(wavs)["hidden_states"], b(wavs)["hidden_states"]
    assert len(ha) == len(hb) == 2 * TINY.n_blocks + 1
    return max((x - y).abs().max().item() for x, y in zip(ha, hb))


def test_same_hidden_states_as_s3prl_npc_local_both_ways(tmp_path):
    hub = _register()
    torch.manual_seed(0)
    model = NPCModel(TINY)
    for m in model.modules():  # non-trivial BatchNorm statistics
        if isinstance(m, torch.nn.BatchNorm1d):
            m.running_mean.normal_()
            m.running_var.uniform_(0.5, 2.0)
    ours = tmp_path / "ours.ckpt"
    torch.save(
        {
            "format": "s3prl_emoaware",
            "kind": "npc",
            "model": model.state_dict(),
            "config": {"model": to_dict(TINY), "frontend": to_dict(FBANK)},
            "step": 0,
        },
        ours,
    )
    theirs = tmp_path / "s3prl_npc.ckpt"
    torch.save(to_s3prl_npc(model.state_dict(), TINY, FBANK), theirs)
    ours_up, theirs_up = hub.ems_npc_local(ckpt=str(ours)).eval(), hub.npc_local(ckpt=str(theirs)).eval()
    assert _max_diff(ours_up, theirs_up) < 1e-4
    # and an s3prl-format checkpoint loads in our upstream
    cfg, fbank, state = from_s3prl_npc(torch.load(theirs, weights_only=True))
    assert cfg == TINY and fbank.window_type == "hamming"
    assert _max_diff(hub.ems_npc_local(ckpt=str(theirs)).eval(), theirs_up) < 1e-4


@pytest.mark.parametrize("variant", ["none", "input_mask", "loss_weight", "both", "authors"])
def test_every_ems_variant_pretrains(variant, tiny_iemocap, tmp_path):
    cache = tmp_path / "cache"
    extract_intensities(tiny_iemocap, cache, source="energy")
    recipe = load_config(
        PretrainRecipe,
        shipped_config("upstream_configs", "ems_npc_tiny"),
        [f"objective.variant={variant}", "training.total_steps=3"],
    )
    trainer, history = pretrain(recipe, tiny_iemocap, tmp_path / "pt", str(cache))
    assert len(history) == 3 and all(torch.isfinite(torch.tensor(l)) for _, l in history)
    ckpt = torch.load(tmp_path / "pt" / "last.ckpt", weights_only=True)
    assert ckpt["kind"] == "npc" and ckpt["config"]["objective"]["variant"] == variant
    hub = _register()
    up = hub.ems_npc_local(ckpt=str(tmp_path / "pt" / "last.ckpt"))
    assert up.get_downsample_rates("hidden_states") == 160
    assert ("intensity_head.weight" in ckpt["model"]) == (variant == "authors")
    with torch.no_grad():  # no intensity at downstream time, whatever the variant
        assert len(up([torch.randn(16000)])["hidden_states"]) == 2 * TINY.n_blocks + 1


def test_loss_weight_normalises_a_nearly_flat_intensity():
    from s3prl_emoaware.pretraining.tasks import normalised_intensity

    flat = torch.tensor([[0.600, 0.601, 0.605, 0.602, 0.0], [0.3, 0.3, 0.3, 0.0, 0.0]])
    lengths = torch.tensor([4, 3])
    mm = normalised_intensity(flat, lengths, "minmax")
    assert torch.allclose(mm[0, :4], torch.tensor([0.0, 0.2, 1.0, 0.4]), atol=1e-3) and mm[0, 4] == 0
    assert torch.all(mm[1] == 0)  # a constant curve carries no ranking: no frame is favoured
    rk = normalised_intensity(flat, lengths, "rank")
    assert torch.allclose(rk[0, :4], torch.tensor([0.0, 1 / 3, 1.0, 2 / 3]))


def test_npc_logs_where_its_input_masks_fall(tiny_iemocap, tmp_path):
    import numpy as np

    from s3prl_emoaware.masking.spans import MaskingConfig
    from s3prl_emoaware.pretraining.data import Batch
    from s3prl_emoaware.pretraining.tasks import build_task

    feats = torch.randn(2, 300, 80)
    curve = np.zeros(300)
    curve[150:250] = 1.0
    batch = Batch(
        feats, torch.tensor([300, 300]), [curve, curve], torch.tensor(np.stack([curve, curve])).float(), ["a", "b"]
    )
    logs = {}
    for strategy in ("random", "ems", "ems_topk"):
        task = build_task(
            "npc",
            to_dict(TINY),
            MaskingConfig(strategy=strategy),
            80,
            {"variant": "input_mask"},
        )
        _, logs[strategy] = task.loss(task.build_model(), batch, np.random.default_rng(0))
    assert abs(logs["ems"]["mask/fraction"] - logs["random"]["mask/fraction"]) < 0.03
    assert logs["ems_topk"]["mask/fraction"] < logs["random"]["mask/fraction"]
    assert logs["ems"]["mask/top_quartile_share"] > 0.6 > logs["random"]["mask/top_quartile_share"]
    assert 0 < logs["ems"]["mask/coverage"] <= 1


def test_masked_frame_weight_scores_the_masked_frames_more():
    import numpy as np

    from s3prl_emoaware.masking.spans import MaskingConfig
    from s3prl_emoaware.pretraining.data import Batch
    from s3prl_emoaware.pretraining.tasks import build_task

    torch.manual_seed(0)
    feats = torch.randn(1, 200, 80)
    batch = Batch(feats, torch.tensor([200]), None, None, ["a"])
    model_cfg = to_dict(TINY)

    def loss_and_mask(weight):
        task = build_task(
            "npc",
            model_cfg,
            MaskingConfig(strategy="random"),
            80,
            {"variant": "input_mask", "masked_frame_weight": weight},
        )
        torch.manual_seed(1)
        model = task.build_model().eval()  # deterministic quantiser and batch norm: the two passes agree
        mask, _ = task.draw_masks(batch, np.random.default_rng(0))
        loss, _ = task.loss(model, batch, np.random.default_rng(0))
        with torch.no_grad():
            pred, _, _ = model(feats.masked_fill(mask[..., None], 0.0), None)
        per_frame = (pred - feats).abs().mean(-1)[0]
        return loss.item(), per_frame, mask[0]

    plain, per_frame, mask = loss_and_mask(1.0)
    assert plain == pytest.approx(per_frame.mean().item(), rel=1e-5)
    weighted, _, _ = loss_and_mask(5.0)
    m = mask.float()
    expected = (per_frame * (1 + 4 * m)).sum() / (1 + 4 * m).sum()
    assert 0 < m.mean() < 0.5 and weighted == pytest.approx(expected.item(), rel=1e-5)
    with pytest.raises(ValueError, match="masked_frame_weight needs an input-masking variant"):
        build_task(
            "npc", model_cfg, MaskingConfig(strategy="random"), 80, {"variant": "none", "masked_frame_weight": 2}
        )
    with pytest.raises(ValueError, match=">= 1"):
        build_task(
            "npc",
            model_cfg,
            MaskingConfig(strategy="random"),
            80,
            {"variant": "input_mask", "masked_frame_weight": 0.5},
        )


@pytest.mark.slow
def test_stock_runner_trains_and_evaluates_ems_npc_from_any_directory(tiny_iemocap, tmp_path):

    from subprocess_env import child_env, stock_evaluate_test, stock_train

    recipe = load_config(
        PretrainRecipe,
        shipped_config("upstream_configs", "ems_npc_tiny"),
        ["objective.variant=none", "masking.strategy=random"],
    )
    pretrain(recipe, tiny_iemocap, tmp_path / "home_pt", None)
    home = tmp_path / "home"
    home.mkdir()
    (home / "ems_npc.ckpt").write_bytes((tmp_path / "home_pt" / "last.ckpt").read_bytes())
    env = child_env(S3PRL_EMOAWARE_HOME=str(home))
    elsewhere = tmp_path / "somewhere"
    elsewhere.mkdir()
    override = (
        "config.runner.total_steps=4,,config.runner.eval_step=2,,config.runner.save_step=2,,"
        "config.runner.log_step=2,,config.runner.gradient_accumulate_steps=1,,"
        f"config.downstream_expert.datarc.root='{tiny_iemocap}',,"
        f"config.downstream_expert.datarc.meta_data='{tiny_iemocap / 'meta_data'}',,"
        "config.downstream_expert.datarc.num_workers=0"
    )
    expdir = tmp_path / "exp"
    stock_train("ems_npc", "emotion", override, expdir, cwd=elsewhere, env=env)
    ev = stock_evaluate_test(expdir, cwd=elsewhere, env=env)
    assert "test acc:" in ev.stdout
