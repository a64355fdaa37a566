"""ECAPA-TDNN: SpeechBrain state dicts load and reproduce SpeechBrain's embedding."""

import pytest
import torch

from s3prl_emoaware.models.ecapa import EcapaConfig, EcapaTdnn, load_speechbrain_state_dict

speechbrain_ecapa = pytest.importorskip("speechbrain.lobes.models.ECAPA_TDNN")  # test-only reference


@pytest.mark.parametrize("channels", [[64, 64, 64, 64, 192], [512, 512, 512, 512, 1536]])
def test_speechbrain_equivalence(channels):
    torch.manual_seed(0)
    reference = speechbrain_ecapa.ECAPA_TDNN(
        80,
        lin_neurons=192,
        channels=channels,
        attention_channels=128,
        res2net_scale=8,
        se_channels=128,
        global_context=True,
    )
    for m in reference.modules():  # trained-like BatchNorm statistics, so a mis-mapped BN would show
        if isinstance(m, torch.nn.BatchNorm1d):
            m.running_mean.normal_(0, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
    reference.eval()
    ours = EcapaTdnn(EcapaConfig(channels=channels)).eval()
    load_speechbrain_state_dict(ours, reference.state_dict())
    feats = torch.randn(3, 128, 80)
    with torch.no_grad():
        expected = reference(feats).squeeze(1)
        got, states = ours(feats)
        assert (got - expected).abs().max().item() < 1e-4
        rel = torch.tensor([1.0, 0.75, 0.5])  # SpeechBrain takes relative lengths
        expected = reference(feats, lengths=rel).squeeze(1)
        got, _ = ours(feats, lengths=torch.tensor([128, 96, 64]))
        assert (got - expected).abs().max().item() < 1e-4
    assert len(states) == 4 and all(s.shape == (3, 128, channels[0]) for s in states)


def test_mismatched_state_dict_is_refused():
    ours = EcapaTdnn(EcapaConfig(channels=[64, 64, 64, 64, 192]))
    with pytest.raises(ValueError, match="not a matching SpeechBrain"):
        load_speechbrain_state_dict(ours, {"blocks.0.conv.conv.weight": torch.zeros(1)})


def test_ecapa_front_end_normalises_like_speechbrain(tmp_path):
    """SpeechBrain's ECAPA recipes subtract each band's sentence mean and keep its spread."""
    from speechbrain.processing.features import InputNormalization

    from s3prl_emoaware.checkpoints import load_encoder
    from s3prl_emoaware.features import FbankConfig, FbankFrontend

    wav = torch.sin(torch.linspace(0, 2000, 16000)) * torch.linspace(0.05, 0.5, 16000)  # loudness ramps up
    raw = FbankFrontend(FbankConfig(window_type="hamming", cmvn=False)).extract_one(wav)
    ours = FbankFrontend(FbankConfig(window_type="hamming", cmvn=True, cmvn_std=False)).extract_one(wav)
    reference = InputNormalization(norm_type="sentence", std_norm=False)(raw.unsqueeze(0), torch.tensor([1.0]))[0]
    assert (ours - reference).abs().max().item() < 1e-4
    assert (ours.std(dim=0) - raw.std(dim=0)).abs().max().item() < 1e-4  # the dynamic range survives
    both = FbankFrontend(FbankConfig(window_type="hamming", cmvn=True)).extract_one(wav)
    assert torch.allclose(both.std(dim=0), torch.ones(80), atol=1e-3)  # s3prl's CMVN flattens it
    # a SpeechBrain embedding_model.ckpt gets SpeechBrain's normalisation in the upstream
    torch.save(speechbrain_ecapa.ECAPA_TDNN(80, lin_neurons=192).state_dict(), tmp_path / "embedding_model.ckpt")
    _, fbank = load_encoder(tmp_path / "embedding_model.ckpt", "ecapa")
    assert fbank.cmvn and not fbank.cmvn_std
