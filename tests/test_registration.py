"""The autoload hook: s3prl sees our names with no user code, and start-up stays torch-free."""

import subprocess
import sysconfig
from pathlib import Path

import torch
from subprocess_env import PYTHON, child_env


def test_pth_hook_is_installed():
    site = Path(sysconfig.get_paths()["purelib"])
    pth = site / "s3prl_emoaware-autoload.pth"
    assert pth.is_file(), "install the package (pip install .) so the autoload hook is in site-packages"
    assert pth.read_text().strip() == "import _s3prl_emoaware_autoload"


def test_startup_imports_neither_torch_nor_s3prl():
    out = subprocess.run(
        [PYTHON, "-X", "importtime", "-c", "import site"], capture_output=True, text=True, env=child_env()
    )
    modules = [line.rsplit("|", 1)[-1].strip() for line in out.stderr.splitlines() if "|" in line]
    assert "_s3prl_emoaware_autoload" in modules  # the hook did run
    assert not [m for m in modules if m.split(".")[0] in ("torch", "s3prl", "s3prl_emoaware", "numpy")]


def test_stock_hub_and_downstream_see_us_without_registration(tmp_path):
    code = (
        "import s3prl.hub, s3prl.downstream, importlib\n"
        "print('UP', callable(getattr(s3prl.hub, 'emoaware_fbank', None)))\n"
        "print('OPT', 'emoaware_fbank' in s3prl.hub.options())\n"
        "print('PATH', any(p.endswith('downstream_entry') for p in s3prl.downstream.__path__))\n"
    )
    out = subprocess.run([PYTHON, "-c", code], capture_output=True, text=True, env=child_env(), cwd=tmp_path)
    assert "UP True" in out.stdout and "PATH True" in out.stdout, out.stdout + out.stderr
    assert "OPT True" in out.stdout


def test_register_is_idempotent():
    import s3prl_emoaware

    s3prl_emoaware.register()
    s3prl_emoaware.register()
    import s3prl.downstream
    import s3prl.hub

    entries = [p for p in s3prl.downstream.__path__ if p.endswith("downstream_entry")]
    assert len(entries) == 1
    assert callable(s3prl.hub.emoaware_fbank)


def test_emoaware_fbank_upstream_contract():
    import s3prl_emoaware

    s3prl_emoaware.register()
    import s3prl.hub

    upstream = s3prl.hub.emoaware_fbank(ckpt=None, model_config=None, refresh=False)
    wavs = [torch.randn(16000), torch.randn(8000)]
    out = upstream(wavs)
    states = out["hidden_states"]
    assert len(states) == 1 and states[0].shape == (2, 98, 80)  # Kaldi snip_edges: 1 + (16000-400)//160
    assert upstream.get_downsample_rates("hidden_states") == 160
    # the second utterance is zero-padded past its 48 frames
    assert torch.all(states[0][1, 48:] == 0) and states[0][1, :48].abs().sum() > 0
