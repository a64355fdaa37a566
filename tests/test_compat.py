"""Each shim of the compatibility layer: adds what is missing, keeps what works, and is needed."""

import argparse
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import torch
import torchaudio
from subprocess_env import PYTHON, child_env

from s3prl_emoaware.s3prl_adapters import compat


def test_set_audio_backend_added_when_missing(monkeypatch):
    if hasattr(torchaudio, "set_audio_backend"):
        monkeypatch.delattr(torchaudio, "set_audio_backend")
    assert compat.shim_set_audio_backend() is True
    assert torchaudio.set_audio_backend("sox_io") is None


def test_set_audio_backend_kept_when_present(monkeypatch):
    sentinel = lambda backend=None: "original"  # noqa: E731
    monkeypatch.setattr(torchaudio, "set_audio_backend", sentinel, raising=False)
    assert compat.shim_set_audio_backend() is False
    assert torchaudio.set_audio_backend is sentinel


def test_sox_effects_stub_raises_clear_error(monkeypatch):
    monkeypatch.delitem(sys.modules, "torchaudio.sox_effects", raising=False)
    if hasattr(torchaudio, "sox_effects"):
        monkeypatch.delattr(torchaudio, "sox_effects")
    applied = compat.shim_sox_effects()
    from torchaudio.sox_effects import apply_effects_tensor  # the import s3prl's mos_prediction does

    assert applied is True
    with pytest.raises(compat.CompatError, match="sox_effects was removed|removed sox_effects"):
        apply_effects_tensor(torch.zeros(1, 10), 16000, [["gain", "1"]])


def test_hf_hub_standins_only_fail_when_used(monkeypatch):
    import huggingface_hub

    for name in ("HfFolder", "Repository"):
        monkeypatch.delattr(huggingface_hub, name, raising=False)
    assert compat.shim_hf_hub_legacy() is True
    from huggingface_hub import HfFolder, Repository  # what s3prl's runner imports

    with pytest.raises(compat.CompatError, match="push_to_hf_hub"):
        HfFolder.get_token()
    with pytest.raises(compat.CompatError, match="huggingface_hub 1.0"):
        Repository("x")


def test_hf_hub_existing_names_untouched(monkeypatch):
    import huggingface_hub

    class Original:  # a stack that still has the API
        pass

    monkeypatch.setattr(huggingface_hub, "HfFolder", Original, raising=False)
    monkeypatch.setattr(huggingface_hub, "Repository", Original, raising=False)
    assert compat.shim_hf_hub_legacy() is False
    assert huggingface_hub.HfFolder is Original


def test_namespace_checkpoint_loads_with_weights_only(tmp_path):
    # What the runner saves under 'Args' and reloads with torch.load's weights_only default (-e).
    path = tmp_path / "states-1.ckpt"
    torch.save({"Args": argparse.Namespace(mode="train", upstream="fbank"), "Step": 1}, path)
    code = (
        "import torch, sys\n"
        "try:\n"
        "    torch.load(sys.argv[1], map_location='cpu')\n"
        "except Exception as e:\n"
        "    print('REFUSED', type(e).__name__)\n"
        "else:\n"
        "    print('LOADED')\n"
    )
    # Without the shim (plain interpreter, s3prl not imported): refused by torch >= 2.6.
    out = subprocess.run([PYTHON, "-c", code, str(path)], capture_output=True, text=True, env=child_env())
    assert "REFUSED" in out.stdout, out.stdout + out.stderr
    compat.shim_namespace_safe_global()
    ckpt = torch.load(path, map_location="cpu")
    assert ckpt["Args"].upstream == "fbank"


def test_audio_load_falls_back_to_soundfile_without_ffmpeg(monkeypatch, tmp_path):
    wav = (0.1 * np.sin(np.arange(1600) / 5)).astype("float32")
    path = tmp_path / "a.wav"
    sf.write(path, wav, 16000, subtype="PCM_16")

    def broken_load(*args, **kwargs):  # torchaudio.load when torchcodec cannot find FFmpeg
        raise RuntimeError("Could not load libtorchcodec. Likely causes: FFmpeg is not properly installed")

    monkeypatch.setattr(torchaudio, "load", broken_load)
    monkeypatch.setattr(compat, "_torchcodec_usable", lambda: False)
    assert compat.shim_audio_load_fallback() is True
    loaded, rate = torchaudio.load(str(path))
    assert rate == 16000 and loaded.shape == (1, 1600)
    assert torch.allclose(loaded[0], torch.from_numpy(wav), atol=1e-4)


def test_audio_load_untouched_when_torchcodec_works(monkeypatch):
    original = torchaudio.load
    monkeypatch.setattr(compat, "_torchcodec_usable", lambda: True)
    assert compat.shim_audio_load_fallback() is False
    assert torchaudio.load is original


def test_s3prl_hub_needs_the_hook():
    """Without our finder on sys.meta_path, s3prl 0.4.18 does not even import on this stack."""
    code = (
        "import sys\n"
        "sys.meta_path[:] = [f for f in sys.meta_path if type(f).__name__ != '_S3prlHookFinder']\n"
        "try:\n"
        "    import s3prl.hub\n"
        "except Exception as e:\n"
        "    print('FAILED', type(e).__name__, e)\n"
        "else:\n"
        "    print('IMPORTED')\n"
    )
    out = subprocess.run([PYTHON, "-c", code], capture_output=True, text=True, env=child_env())
    assert "FAILED" in out.stdout, out.stdout + out.stderr
