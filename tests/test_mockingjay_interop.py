"""Our Mockingjay upstream and s3prl's mockingjay_local give the same hidden states, both ways."""

import pytest
import torch

from s3prl_emoaware.config import to_dict
from s3prl_emoaware.features import FbankConfig
from s3prl_emoaware.models.mockingjay import MockingjayConfig, mockingjay_model
from s3prl_emoaware.s3prl_adapters.mockingjay_interop import from_s3prl_checkpoint, to_s3prl_checkpoint

TINY = MockingjayConfig(input_dim=240, hidden_size=32, num_layers=2, num_heads=4, intermediate_size=64)
FBANK = FbankConfig(delta_order=2, cmvn=True)


def _our_checkpoint(path, seed=0):
    torch.manual_seed(seed)
    model = mockingjay_model(TINY)
    torch.save(
        {
            "format": "s3prl_emoaware",
            "kind": "mockingjay",
            "model": model.state_dict(),
            "config": {"model": to_dict(TINY), "frontend": to_dict(FBANK)},
            "step": 0,
        },
        path,
    )
    return model


def _s3prl_upstream(path):
    import s3prl_emoaware

    s3prl_emoaware.register()
    import s3prl.hub

    return s3prl.hub.mockingjay_local(ckpt=str(path)).eval()


def _ours(path):
    import s3prl_emoaware

    s3prl_emoaware.register()
    import s3prl.hub

    return s3prl.hub.ems_mockingjay_local(ckpt=str(path)).eval()


def _compare(a, b):
    torch.manual_seed(1)
    wavs = [torch.randn(16000 * 2)]
    with torch.no_grad():
        ha, hb = a(wavs)["hidden_states"], b(wavs)["hidden_states"]
    assert len(ha) == len(hb) == TINY.num_layers + 1
    return max((x - y).abs().max().item() for x, y in zip(ha, hb))


def test_exported_checkpoint_loads_in_stock_mockingjay_local(tmp_path):
    ours_path = tmp_path / "ours.ckpt"
    model = _our_checkpoint(ours_path)
    exported = to_s3prl_checkpoint(model.state_dict(), TINY, FBANK)
    torch.save(exported, tmp_path / "s3prl.ckpt")
    assert _compare(_ours(ours_path), _s3prl_upstream(tmp_path / "s3prl.ckpt")) < 1e-4


def test_s3prl_checkpoint_loads_in_our_upstream(tmp_path):
    from s3prl.upstream.mockingjay.model import TransformerConfig, TransformerModel, TransformerSpecPredictionHead

    transformer = {
        "hidden_size": 32,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "hidden_act": "gelu",
        "intermediate_size": 64,
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "initializer_range": 0.02,
        "layer_norm_eps": 1e-12,
        "share_layer": False,
        "pre_layer_norm": False,
    }
    torch.manual_seed(3)
    cfg = TransformerConfig(transformer)
    model, head = TransformerModel(cfg, 240), TransformerSpecPredictionHead(cfg, 240)
    for p in model.parameters():  # LayerNorms start at 1/0: perturb everything so a mix-up would show
        torch.nn.init.normal_(p, std=0.2)
    audio = {
        "kaldi": {
            "feat_type": "fbank",
            "fbank": {"num_mel_bins": 80, "frame_length": 25.0, "frame_shift": 10.0, "use_log_fbank": True},
        },
        "delta": {"order": 2, "win_length": 5},
        "cmvn": {"use_cmvn": True},
    }
    ckpt = {
        "Transformer": model.state_dict(),
        "SpecHead": head.state_dict(),
        "Upstream_Config": {"transformer": transformer, "task": {"sequence_length": 1500}, "audio": audio},
        "Config": {"runner": {}},
    }
    torch.save(ckpt, tmp_path / "s3prl.ckpt")
    model_cfg, fbank, state = from_s3prl_checkpoint(ckpt)
    assert model_cfg.hidden_size == 32 and fbank.feature_dim == 240 and "head.output.weight" in state
    assert _compare(_ours(tmp_path / "s3prl.ckpt"), _s3prl_upstream(tmp_path / "s3prl.ckpt")) < 1e-4


def test_local_upstream_needs_a_checkpoint():
    import s3prl_emoaware
    from s3prl_emoaware.utils.errors import UserFacingError

    s3prl_emoaware.register()
    import s3prl.hub

    with pytest.raises(UserFacingError, match="needs -k CKPT"):
        s3prl.hub.ems_mockingjay_local()
