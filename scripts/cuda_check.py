"""CUDA check of the package: our upstreams, pre-training, StrengthNet and the stock runner on a GPU.

Usage: python scripts/cuda_check.py [--device cuda] --corpora DIR --out DIR [--work DIR] [--steps 20]
[--runner-steps 40] [--only a,b,c,d]

``--corpora DIR`` holds a generated CREMA-D corpus at ``DIR/cremad`` (made beforehand, e.g.
``s3prl-emoaware synth-corpus cremad DIR/cremad --size tiny``: a GPU machine may have no espeak-ng).
Prints one table of checks (PASS / FAIL / NO-CUDA-PATH, with figures) and writes it to
``OUT/cuda_check.json``; the tails of the subprocesses' output go to ``OUT/cuda_check.log``.
Every check runs in its own try/except, so one failure does not hide the others.

a. Each upstream of ``s3prl_adapters.hubconf`` (``emoaware_fbank``, ``ems_mockingjay_local``,
   ``ems_npc_local``, ``emo_ecapa_local``), from a random-weight checkpoint of the shipped small/tiny
   recipe: the same wavs on CPU and on the device (max abs difference of every hidden state, relative
   to that state's scale; also with TF32 off), and batch invariance on the device (each utterance
   alone vs in the padded batch; frames past its own count must be zero).
b. Pre-training (small EMS Mockingjay and NPC recipes, energy intensities): ``s3prl-emoaware pretrain
   --device DEV`` for ``--steps`` steps; in-process the same run, a run cut at half and resumed
   (loss sequence and final weights against the uninterrupted run), and the same steps on CPU
   (losses, wall time); the tiny ECAPA speaker recipe on the device; ``torchrun --nproc_per_node 1``.
c. StrengthNet: whether ``train-strengthnet`` / ``intensity`` have a device option; both commands as
   they are; the trained model's frame curves on CPU (extraction's path) vs on the device; training
   steps on the device through the package's loss, and through a device-safe copy of it (CPU vs
   device losses, step times).
d. The stock s3prl runner (``run-downstream -d emotion_cremad -u ems_mockingjay_local --device DEV``)
   with the hidden-state cache on and off: both must finish with the same dev and test UA/WA and
   predictions.

On the GPU machine (no network, no s3prl/soundfile/tensorboardX/editdistance, no espeak-ng), with the wheels of
s3prl 0.4.18 (built from its sdist), omegaconf, tensorboardX, soundfile, cffi, pycparser and editdistance in ``.whl/``
and the corpus in ``.cuda_check/corpora/cremad`` (both carried)::

    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
        .whl/*.whl && export PYTHONPATH=/tmp/site:$PWD || exit
    python3 scripts/cuda_check.py --device cuda --corpora .cuda_check/corpora --out $OUT --work /tmp/ccw

(about 2-3 minutes expected; not yet run on a GPU: the session that wrote it was refused a machine. Run locally with
``--device cpu`` it passes every check, CPU against CPU, in about 76 s.)

With ``--device cpu`` the device side is a second CPU copy: every comparison is CPU vs CPU.
Subprocesses run ``python -m s3prl_emoaware.cli`` from this checkout (the runner's child registers
our names itself: ``s3prl_adapters.launch``); this process calls ``s3prl_emoaware.register()``.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import re
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from types import SimpleNamespace
from typing import Callable, Dict, List, Optional, Sequence

REPO = Path(__file__).resolve().parents[1]

REL_TOL = 1e-3  # CPU vs device, relative to a hidden state's scale (max abs value)
RESUME_TOL = 1e-4  # relative loss difference accepted for resume on the device (CPU is exact)
SUBPROCESS_TIMEOUT_S = 150

_LOG: List[str] = []


# --- comparisons (pure; tested in tests/test_cuda_check.py) ----------------------------------------------------------


def state_difference(reference, other) -> Dict[str, float]:
    """``{"max_abs", "scale", "rel"}`` of two tensors of one hidden state: the largest absolute
    difference, the reference's largest absolute value, and their ratio (``inf`` when the shapes
    differ or a value is not finite; 0 for two all-zero states)."""
    import torch

    a = reference.detach().float().cpu()
    b = other.detach().float().cpu()
    if a.shape != b.shape:
        return {"max_abs": math.inf, "scale": math.nan, "rel": math.inf}
    if not (torch.isfinite(a).all() and torch.isfinite(b).all()):
        return {"max_abs": math.inf, "scale": math.nan, "rel": math.inf}
    diff = (a - b).abs().max().item() if a.numel() else 0.0
    scale = a.abs().max().item() if a.numel() else 0.0
    rel = diff / scale if scale > 0 else (0.0 if diff == 0 else math.inf)
    return {"max_abs": diff, "scale": scale, "rel": rel}


def compare_states(reference: Sequence, other: Sequence, tol: float = REL_TOL) -> Dict[str, object]:
    """Every hidden state of two forwards: per-state differences, the worst relative one, and ``ok``
    (same number of states and every relative difference below ``tol``)."""
    if len(reference) != len(other):
        return {"ok": False, "n_states": [len(reference), len(other)], "worst_rel": math.inf, "states": []}
    states = [state_difference(a, b) for a, b in zip(reference, other)]
    worst = max((s["rel"] for s in states), default=0.0)
    return {
        "ok": bool(states) and worst < tol,
        "n_states": len(states),
        "worst_rel": worst,
        "worst_abs": max(s["max_abs"] for s in states) if states else 0.0,
        "states": states,
    }


def batch_invariance(alone: Sequence[Sequence], batched: Sequence, frames: Sequence[int]) -> Dict[str, float]:
    """``alone[i][k]``: state ``k`` (1, T_i, D) of utterance ``i`` computed alone; ``batched[k]``:
    (B, T, D) of the padded batch; ``frames[i]``: the utterance's own frame count. Returns the
    largest relative difference on real frames and the largest absolute value past them."""
    worst_rel, worst_pad = 0.0, 0.0
    for i, n in enumerate(frames):
        for k, state in enumerate(batched):
            mine = alone[i][k][0, :n]
            d = state_difference(mine, state[i, :n])
            worst_rel = max(worst_rel, d["rel"])
            if state.shape[1] > n:
                worst_pad = max(worst_pad, state[i, n:].detach().float().abs().max().item())
    return {"rel_real_frames": worst_rel, "max_abs_padding": worst_pad}


def loss_difference(a: Sequence[float], b: Sequence[float]) -> Dict[str, object]:
    """Two loss sequences: ``{"n", "first_rel", "max_rel", "exact"}`` (relative to the reference
    ``a``'s magnitude; ``inf`` when the lengths differ or a loss is not finite)."""
    if len(a) != len(b) or not a:
        return {"n": [len(a), len(b)], "first_rel": math.inf, "max_rel": math.inf, "exact": False}
    rels = []
    for x, y in zip(a, b):
        if not (math.isfinite(x) and math.isfinite(y)):
            rels.append(math.inf)
        else:
            rels.append(abs(x - y) / max(abs(x), 1e-12))
    return {"n": len(a), "first_rel": rels[0], "max_rel": max(rels), "exact": all(x == y for x, y in zip(a, b))}


def weights_difference(a: Dict, b: Dict) -> float:
    """Largest absolute difference between two state dicts' floating tensors (``inf`` if keys differ)."""
    if set(a) != set(b):
        return math.inf
    worst = 0.0
    for k, v in a.items():
        if hasattr(v, "is_floating_point") and v.is_floating_point() and v.numel():
            worst = max(worst, (v.float().cpu() - b[k].float().cpu()).abs().max().item())
    return worst


# --- plumbing -------------------------------------------------------------------------------------------------------


def _last_line(text: str) -> str:
    lines = [line for line in str(text).strip().splitlines() if line.strip()]
    return lines[-1].strip()[:400] if lines else ""


def _env() -> Dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def sh(args: Sequence[str], name: str, work: Path, timeout: float = SUBPROCESS_TIMEOUT_S) -> SimpleNamespace:
    """Run a command from the checkout; its output goes to WORK/logs/NAME.log and its tail to the log."""
    logs = work / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    try:
        proc = subprocess.run(
            list(args),
            cwd=REPO,
            env=_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=timeout,
        )
        rc, out = proc.returncode, proc.stdout
    except subprocess.TimeoutExpired as err:
        rc, out = 124, (err.stdout or b"").decode() if isinstance(err.stdout, bytes) else (err.stdout or "")
        out += f"\n[cuda_check] timed out after {timeout} s"
    wall = time.perf_counter() - start
    (logs / f"{name}.log").write_text(out)
    tail = "\n".join(out.strip().splitlines()[-40:])
    _LOG.append(f"===== {name}: rc {rc}, {wall:.1f} s: {' '.join(map(str, args))}\n{tail}\n")
    errors = [line for line in out.splitlines() if re.search(r"error|Error|Traceback", line)]
    return SimpleNamespace(rc=rc, wall=wall, out=out, error=_last_line(errors[-1] if errors else out))


def cli(*args: str) -> List[str]:
    return [sys.executable, "-m", "s3prl_emoaware.cli", *map(str, args)]


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


class Checks:
    """Collects rows ``{"check", "status", "figures", "error"}``."""

    def __init__(self):
        self.rows: List[Dict[str, object]] = []

    def run(self, name: str, fn: Callable[[], Dict[str, object]]) -> Optional[Dict[str, object]]:
        start = time.perf_counter()
        print(f"[cuda_check] {name} ...", flush=True)
        try:
            result = fn() or {}
            status = result.pop("status", "PASS" if result.pop("ok", True) else "FAIL")
            error = result.pop("error", "")
        except Exception as err:  # noqa: BLE001 - one failing check must not hide the others
            tb = traceback.format_exc()
            _LOG.append(f"===== {name}: exception\n{tb}\n")
            result, status, error = {}, "FAIL", _last_line(f"{type(err).__name__}: {err}")
        row = {"check": name, "status": status, "figures": result, "error": error}
        row["seconds"] = round(time.perf_counter() - start, 1)
        self.rows.append(row)
        print(f"[cuda_check] {name}: {status} ({row['seconds']} s) {error}", flush=True)
        return result


def _fmt(v) -> str:
    if isinstance(v, float):
        if v == 0:
            return "0"
        if not math.isfinite(v):
            return str(v)
        return f"{v:.3g}" if abs(v) < 1e-2 or abs(v) >= 1e4 else f"{v:.4g}"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k}: {_fmt(x)}" for k, x in v.items()) + "}"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_fmt(x) for x in v) + "]"
    return str(v)


def print_table(rows: List[Dict[str, object]]) -> None:
    width = max(len(r["check"]) for r in rows)
    print(f"\n{'check':<{width}}  {'status':<12} {'s':>6}  figures")
    for r in rows:
        figs = "; ".join(f"{k}={_fmt(v)}" for k, v in r["figures"].items() if k != "detail")
        print(f"{r['check']:<{width}}  {r['status']:<12} {r['seconds']:>6}  {figs}")
        if r["error"]:
            print(f"{'':<{width}}  {'':<12} {'':>6}  error: {r['error']}")


# --- a. upstreams ---------------------------------------------------------------------------------------------------


def write_checkpoints(work: Path, corpus: Path) -> Dict[str, Path]:
    """Random-weight checkpoints of the shipped small/tiny recipes (what a trainer saves before step 1)."""
    from s3prl_emoaware.checkpoints.build import save_untrained
    from s3prl_emoaware.config import load_config, shipped_config
    from s3prl_emoaware.pretraining.trainer import PretrainRecipe

    items = [SimpleNamespace(speaker=s) for s in ("a", "b")]  # the speaker head's size only
    paths = {}
    for name, recipe in (
        ("ems_mockingjay_local", "ems_mockingjay_small"),
        ("ems_npc_local", "ems_npc_small"),
        ("emo_ecapa_local", "ecapa_speaker_tiny"),
    ):
        path = work / "ckpt" / f"{recipe}.ckpt"
        path.parent.mkdir(parents=True, exist_ok=True)
        save_untrained(load_config(PretrainRecipe, shipped_config("upstream_configs", recipe)), items, path)
        paths[name] = path
    return paths


def pick_wavs(corpus: Path, n: int = 4):
    """``n`` utterances of different lengths (shortest to longest) as float32 tensors."""
    import torch

    from s3prl_emoaware.corpora.reader import read_corpus
    from s3prl_emoaware.utils.audio import read_audio

    utts = sorted(read_corpus(corpus), key=lambda u: (Path(u.path).stat().st_size, u.utt_id))
    chosen = [utts[round(i * (len(utts) - 1) / max(1, n - 1))] for i in range(n)]
    return [torch.from_numpy(read_audio(u.path, expected_rate=16000)) for u in chosen]


def check_upstream(name: str, ckpt: Optional[Path], wavs, device: str) -> Dict[str, object]:
    import torch

    from s3prl_emoaware.s3prl_adapters import hubconf

    expert = getattr(hubconf, name)(ckpt=str(ckpt) if ckpt else None).eval()
    on_dev = copy.deepcopy(expert).to(device).eval()
    dev_wavs = [w.to(device) for w in wavs]
    with torch.no_grad():
        t0 = time.perf_counter()
        ref = expert(wavs)["hidden_states"]
        cpu_s = time.perf_counter() - t0
        on_dev(dev_wavs)  # warm-up (kernels, cuDNN autotuning)
        _sync(device)
        t0 = time.perf_counter()
        out = on_dev(dev_wavs)["hidden_states"]
        _sync(device)
        dev_s = time.perf_counter() - t0
        cmp = compare_states(ref, out)
        # the same with TF32 off (cuDNN convolutions use TF32 by default on Ampere and later)
        tf32 = (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
        torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
        try:
            strict = compare_states(ref, on_dev(dev_wavs)["hidden_states"])
        finally:
            torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = tf32
        alone = [on_dev([w])["hidden_states"] for w in dev_wavs]
        frames = [expert.num_frames(len(w)) for w in wavs]
        inv = batch_invariance(alone, out, frames)
    inv_ok = inv["rel_real_frames"] < REL_TOL and inv["max_abs_padding"] == 0.0
    return {
        "ok": cmp["ok"] and inv_ok,
        "states": cmp["n_states"],
        "max_abs": cmp["worst_abs"],
        "max_rel": cmp["worst_rel"],
        "max_rel_tf32_off": strict["worst_rel"],
        "batch_inv_rel": inv["rel_real_frames"],
        "batch_pad_abs": inv["max_abs_padding"],
        "fwd_ms_cpu": 1000 * cpu_s,
        "fwd_ms_dev": 1000 * dev_s,
        "detail": {"per_state_rel": [s["rel"] for s in cmp["states"]]},
    }


# --- b. pre-training ------------------------------------------------------------------------------------------------


def energy_cache(corpus: Path, work: Path) -> Path:
    out = work / "intensity_energy"
    if not (out / "index.json").is_file():
        r = sh(cli("intensity", "--corpus", corpus, "--out", out, "--source", "energy"), "intensity_energy", work)
        if r.rc != 0:
            raise RuntimeError(f"intensity --source energy failed: {r.error}")
    return out


# CPU vs device loss comparison: dropout off (CPU and CUDA draw different dropout masks from one seed);
# NPC's Gumbel-softmax noise stays random per device, so its comparison is reported, not judged
COMPARE_OVERRIDES = {
    "ems_mockingjay_small": (["model.dropout=0.0", "model.attention_dropout=0.0"], True),
    "ems_npc_small": (["model.dropout=0.0"], False),
}


def _recipe(config: str, steps: int, extra: Sequence[str] = ()):
    from s3prl_emoaware.config import load_config, shipped_config
    from s3prl_emoaware.pretraining.trainer import PretrainRecipe

    return load_config(
        PretrainRecipe,
        shipped_config("upstream_configs", config),
        [f"training.total_steps={steps}", f"training.save_every={steps}", "training.log_every=1", *extra],
    )


def _weights(path: Path) -> Dict:
    import torch

    return torch.load(path, map_location="cpu", weights_only=True)["model"]


def _pretrain(config, corpus, out, cache, device, steps, extra: Sequence[str] = (), **kw):
    from s3prl_emoaware.pretraining.run import pretrain

    t0 = time.perf_counter()
    trainer, history = pretrain(_recipe(config, steps, extra), corpus, out, str(cache), device=device, **kw)
    _sync(device)
    return [loss for _, loss in history], time.perf_counter() - t0, trainer


def check_pretrain(config: str, corpus: Path, work: Path, device: str, steps: int) -> Dict[str, object]:
    cache = energy_cache(corpus, work)
    base = work / f"pretrain_{config}"
    overrides = [f"training.total_steps={steps}", f"training.save_every={steps}", "training.log_every=1"]
    o_args = [x for o in overrides for x in ("-o", o)]
    r = sh(
        cli("pretrain", "-c", f"upstream_configs/{config}.yaml", "--corpus", corpus, "--intensity", cache)
        + ["--out", str(base / "cli"), "--device", device, *o_args],
        f"pretrain_{config}_cli",
        work,
    )
    figures: Dict[str, object] = {"cli_rc": r.rc, "cli_s": r.wall}
    if r.rc != 0:
        return {**figures, "ok": False, "error": f"pretrain CLI --device {device}: {r.error}"}
    m = re.search(r"step (\d+), last loss ([-\d.eE+naninf]+)", r.out)
    figures["cli_last_loss"] = float(m.group(2)) if m else math.nan
    full, full_s, trainer = _pretrain(config, corpus, base / "full", cache, device, steps)
    figures["model_on"] = str(next(trainer.model.parameters()).device)
    half = max(1, steps // 2)
    first, _, _ = _pretrain(config, corpus, base / "cut", cache, device, steps, stop_at=half)
    rest, _, _ = _pretrain(config, corpus, base / "cut", cache, device, steps, resume=True)
    resume = loss_difference(full, first + rest)
    figures.update(
        {
            "steps": len(full),
            "loss_first": full[0],
            "loss_last": full[-1],
            "dev_s": full_s,
            "resume_loss_max_rel": resume["max_rel"],
            "resume_exact": resume["exact"],
            "resume_weights_abs": weights_difference(
                _weights(base / "full/last.ckpt"), _weights(base / "cut/last.ckpt")
            ),
            "cli_vs_api_weights_abs": weights_difference(
                _weights(base / "full/last.ckpt"), _weights(base / "cli/last.ckpt")
            ),
        }
    )
    ok = all(math.isfinite(x) for x in full) and resume["max_rel"] < RESUME_TOL
    extra, judged = COMPARE_OVERRIDES.get(config, ([], False))
    cpu, cpu_s, _ = _pretrain(config, corpus, base / "cmp_cpu", cache, "cpu", steps, extra)
    dev, dev_s, _ = _pretrain(config, corpus, base / "cmp_dev", cache, device, steps, extra)
    d = loss_difference(cpu, dev)
    figures.update(
        {
            "cmp_overrides": " ".join(extra) or "none",
            "cpu_s": cpu_s,
            "dev_s_same_cfg": dev_s,
            "cpu_vs_dev_loss_first_rel": d["first_rel"],
            "cpu_vs_dev_loss_max_rel": d["max_rel"],
            "cpu_vs_dev_judged": judged,
        }
    )
    if judged:
        ok = ok and d["first_rel"] < REL_TOL
    return {**figures, "ok": ok}


def check_pretrain_ecapa(corpus: Path, work: Path, device: str, steps: int) -> Dict[str, object]:
    out = work / "pretrain_ecapa_speaker_tiny"
    r = sh(
        cli("pretrain", "-c", "upstream_configs/ecapa_speaker_tiny.yaml", "--corpus", corpus, "--out", out)
        + ["--device", device, "-o", f"training.total_steps={steps}", "-o", f"training.save_every={steps}"],
        "pretrain_ecapa_cli",
        work,
    )
    m = re.search(r"step (\d+), last loss ([-\d.eE+naninf]+)", r.out)
    loss = float(m.group(2)) if m else math.nan
    return {
        "ok": r.rc == 0 and math.isfinite(loss),
        "rc": r.rc,
        "s": r.wall,
        "last_loss": loss,
        "error": r.error if r.rc else "",
    }


def check_torchrun(corpus: Path, work: Path, device: str, steps: int) -> Dict[str, object]:
    cache = energy_cache(corpus, work)
    config = "ems_mockingjay_small"
    out = work / "pretrain_torchrun"
    r = sh(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "1"]
        + ["-m", "s3prl_emoaware.cli", "pretrain", "-c", f"upstream_configs/{config}.yaml", "--corpus", str(corpus)]
        + ["--intensity", str(cache), "--out", str(out), "--device", device]
        + ["-o", f"training.total_steps={steps}", "-o", f"training.save_every={steps}", "-o", "training.log_every=1"],
        "pretrain_torchrun",
        work,
    )
    figures: Dict[str, object] = {"rc": r.rc, "s": r.wall}
    if r.rc != 0:
        return {**figures, "ok": False, "error": r.error}
    reference = work / f"pretrain_{config}" / "cli" / "last.ckpt"
    if reference.is_file():
        figures["weights_abs_vs_plain_cli"] = weights_difference(_weights(reference), _weights(out / "last.ckpt"))
    # Trainer: DDP (and the nccl/gloo choice) only when WORLD_SIZE > 1; one process runs as a plain run
    figures["ddp_used"] = False
    figures["note"] = "WORLD_SIZE=1: no process group (nccl needs >= 2 ranks, i.e. >= 2 GPUs)"
    return {**figures, "ok": True}


# --- c. StrengthNet -------------------------------------------------------------------------------------------------


def _has_flag(module_name: str, flag: str) -> bool:
    import importlib

    module = importlib.import_module(f"s3prl_emoaware.cli.{module_name}")
    parser = argparse.ArgumentParser()
    module.add_arguments(parser)
    return any(flag in a.option_strings for a in parser._actions)


def check_strengthnet_cli(corpus: Path, work: Path, device: str) -> Dict[str, object]:
    out = work / "strengthnet"
    flags = {
        "train_device_flag": _has_flag("train_strengthnet", "--device"),
        "intensity_device_flag": _has_flag("intensity", "--device"),
    }
    r = sh(
        cli("train-strengthnet", "--corpus", corpus, "--out", out, "-c", "upstream_configs/strengthnet_tiny.yaml")
        + ["-o", "training.epochs=2"],
        "train_strengthnet",
        work,
    )
    figures = {**flags, "train_rc": r.rc, "train_s": r.wall}
    if r.rc != 0:
        return {**figures, "ok": False, "error": f"train-strengthnet: {r.error}"}
    r2 = sh(
        cli(
            "intensity",
            "--corpus",
            corpus,
            "--out",
            work / "intensity_strengthnet",
            "--model",
            out / "strengthnet.ckpt",
        ),
        "intensity_strengthnet",
        work,
    )
    figures.update({"intensity_rc": r2.rc, "intensity_s": r2.wall})
    if r2.rc != 0:
        return {**figures, "ok": False, "error": f"intensity: {r2.error}"}
    if device == "cpu" or (flags["train_device_flag"] and flags["intensity_device_flag"]):
        return {**figures, "ok": True}
    return {
        **figures,
        "status": "NO-CUDA-PATH",
        "error": "train-strengthnet and intensity have no --device: StrengthNet trains and extracts on CPU only "
        "(both ran on CPU here)",
    }


def _strengthnet_batch(corpus: Path, n: int = 8):
    import torch

    from s3prl_emoaware.corpora.reader import read_corpus
    from s3prl_emoaware.features.mel import MelFrontend
    from s3prl_emoaware.utils.audio import read_audio

    frontend = MelFrontend(80, True)
    utts = read_corpus(corpus)[:: max(1, len(read_corpus(corpus)) // n)][:n]
    with torch.no_grad():
        mels = [frontend(torch.from_numpy(read_audio(u.path, expected_rate=16000))[None])[0] for u in utts]
    emotions = ["neu", "hap", "ang", "sad"]
    labels = torch.tensor([emotions.index(u.emotion) if u.emotion in emotions else 0 for u in utts])
    return mels, labels


def check_strengthnet_curves(corpus: Path, work: Path, device: str) -> Dict[str, object]:
    import torch

    from s3prl_emoaware.checkpoints import load_strengthnet
    from s3prl_emoaware.intensity.extract import _strengthnet_curves

    ckpt = work / "strengthnet" / "strengthnet.ckpt"
    if not ckpt.is_file():
        return {"status": "SKIP", "error": f"{ckpt} missing (train-strengthnet failed)"}
    mels, _ = _strengthnet_batch(corpus)
    model = load_strengthnet(ckpt)
    on_dev = copy.deepcopy(model).to(device)
    model.to(memory_format=torch.channels_last)  # as extract_intensities does on CPU
    ref = _strengthnet_curves(model, mels, reference=False)
    lengths = torch.tensor([m.shape[0] for m in mels])
    with torch.no_grad():
        frames = on_dev.frame_strength(
            torch.nn.utils.rnn.pad_sequence(mels, batch_first=True).to(device), lengths.to(device)
        )
        train_path = on_dev(torch.nn.utils.rnn.pad_sequence(mels, batch_first=True).to(device), lengths.to(device))[0]
    worst = max(float(abs(r - f[:n].cpu().numpy()).max()) for r, f, n in zip(ref, frames, lengths.tolist()))
    worst_fwd = max(float(abs(r - f[:n].cpu().numpy()).max()) for r, f, n in zip(ref, train_path, lengths.tolist()))
    return {
        "ok": worst < REL_TOL and worst_fwd < REL_TOL,
        "curves_max_abs": worst,
        "forward_max_abs": worst_fwd,
        "utts": len(mels),
    }


def _device_safe_loss(model, mels, lengths, targets, labels, cfg):
    """``intensity.train._loss`` with its padding mask made on the batch's device."""
    import torch
    from torch import nn

    targets, frame_targets = targets
    frame, utterance, logits = model(mels, lengths)
    mask = torch.arange(mels.shape[1], device=mels.device)[None, :] < lengths[:, None]
    frame_mae = ((frame - frame_targets).abs() * mask).sum() / mask.sum()
    utt_mae = (utterance - targets).abs().mean()
    ce = nn.functional.cross_entropy(logits, labels)
    return cfg.utterance_loss_weight * utt_mae + cfg.frame_loss_weight * frame_mae + cfg.emotion_loss_weight * ce


def check_strengthnet_training(corpus: Path, device: str, steps: int = 10) -> Dict[str, object]:
    import torch

    from s3prl_emoaware.config import load_config, shipped_config
    from s3prl_emoaware.intensity.train import StrengthNetRecipe, _loss
    from s3prl_emoaware.models.strengthnet import StrengthNet

    recipe = load_config(
        StrengthNetRecipe, shipped_config("upstream_configs", "strengthnet_small"), ["model.dropout=0.0"]
    )
    mels, labels = _strengthnet_batch(corpus)
    lengths = torch.tensor([m.shape[0] for m in mels])
    padded = torch.nn.utils.rnn.pad_sequence(mels, batch_first=True)
    g = torch.Generator().manual_seed(0)
    targets = (torch.rand(len(mels), generator=g), torch.rand(padded.shape[:2], generator=g))
    torch.manual_seed(0)
    init = StrengthNet(recipe.model)
    init.set_input_statistics(mels)
    figures: Dict[str, object] = {}
    # the package's own loss on device tensors (train_strengthnet would need it)
    try:
        model = copy.deepcopy(init).to(device)
        _loss(
            model,
            padded.to(device),
            lengths.to(device),
            tuple(t.to(device) for t in targets),
            labels.to(device),
            recipe.training,
        )
        figures["package_loss_on_dev"] = "ok"
    except Exception as err:  # noqa: BLE001
        figures["package_loss_on_dev"] = "error"
        figures["package_loss_error"] = _last_line(f"{type(err).__name__}: {err}")

    def train(dev: str):
        model = copy.deepcopy(init).to(dev).train()
        opt = torch.optim.Adam(model.parameters(), lr=recipe.training.lr)
        x, n, y = padded.to(dev), lengths.to(dev), labels.to(dev)
        t = tuple(v.to(dev) for v in targets)
        losses, times = [], []
        for _ in range(steps):
            _sync(dev)
            t0 = time.perf_counter()
            loss = _device_safe_loss(model, x, n, t, y, recipe.training)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            opt.step()
            _sync(dev)
            times.append(time.perf_counter() - t0)
            losses.append(loss.item())
        return losses, times

    cpu_losses, cpu_times = train("cpu")
    dev_losses, dev_times = train(device)
    d = loss_difference(cpu_losses, dev_losses)
    later = slice(1, None) if steps > 1 else slice(None)
    figures.update(
        {
            "steps": steps,
            "loss_first_rel": d["first_rel"],
            "loss_max_rel": d["max_rel"],
            "step_ms_cpu": 1000 * sum(cpu_times[later]) / len(cpu_times[later]),
            "step_ms_dev": 1000 * sum(dev_times[later]) / len(dev_times[later]),
        }
    )
    ok = d["first_rel"] < REL_TOL and all(math.isfinite(x) for x in dev_losses)
    if figures["package_loss_on_dev"] != "ok":
        return {**figures, "ok": False, "error": f"intensity.train._loss on {device}: {figures['package_loss_error']}"}
    return {**figures, "ok": ok}


# --- d. the stock runner --------------------------------------------------------------------------------------------


def _runner_weights(path: Path) -> Dict:
    """The trained downstream and featurizer weights of a runner checkpoint, one flat dict."""
    import torch

    ckpt = torch.load(path, map_location="cpu", weights_only=True)  # argparse.Namespace: allowed by the compat layer
    return {f"{part}.{k}": v for part in ("Downstream", "Featurizer") for k, v in ckpt.get(part, {}).items()}


def check_runner(corpus: Path, work: Path, device: str, ckpt: Path, steps: int) -> Dict[str, object]:
    half = max(1, steps // 2)
    override = (
        f"config.runner.total_steps={steps},,config.runner.eval_step={half},,config.runner.save_step={half},,"
        f"config.runner.log_step={half},,config.runner.gradient_accumulate_steps=1,,config.optimizer.lr=1.0e-3,,"
        f"config.downstream_expert.datarc.num_workers=0,,config.downstream_expert.datarc.root='{corpus}'"
    )
    results, figures = {}, {}
    cache_dir = work / "runner" / "hc"
    for name, extra in (("cache", ["--hidden-cache", str(cache_dir)]), ("nocache", ["--no-hidden-cache"])):
        expdir = work / "runner" / name
        r = sh(
            cli(
                "run-downstream",
                *extra,
                "-m",
                "train",
                "-u",
                "ems_mockingjay_local",
                "-k",
                ckpt,
                "-d",
                "emotion_cremad",
            )
            + ["-p", str(expdir), "-o", override, "--device", device],
            f"runner_{name}",
            work,
            timeout=200,
        )
        figures[f"{name}_rc"], figures[f"{name}_s"] = r.rc, r.wall
        if r.rc != 0:
            return {**figures, "ok": False, "error": f"run-downstream ({name}): {r.error}"}
        results[name] = {split: json.loads((expdir / f"{split}_metrics.json").read_text()) for split in ("dev", "test")}
        results[name]["pred"] = (expdir / "test_predict.txt").read_text()
        results[name]["states"] = _runner_weights(expdir / f"states-{steps}.ckpt")
    hc = list(cache_dir.rglob("*.pt"))
    for split in ("dev", "test"):
        figures[f"{split}_ua"] = [results["cache"][split]["ua"], results["nocache"][split]["ua"]]
        figures[f"{split}_wa"] = [results["cache"][split]["wa"], results["nocache"][split]["wa"]]
    same = all(results["cache"][s] == results["nocache"][s] for s in ("dev", "test"))
    figures["same_metrics"] = same
    figures["same_test_predictions"] = results["cache"]["pred"] == results["nocache"]["pred"]
    figures["cache_entries"] = len(hc)
    figures["downstream_weights_abs"] = weights_difference(results["cache"]["states"], results["nocache"]["states"])
    return {**figures, "ok": same and figures["same_test_predictions"] and len(hc) > 0}


# --- main -----------------------------------------------------------------------------------------------------------


def environment(device: str) -> Dict[str, object]:
    import numpy
    import torch

    info: Dict[str, object] = {
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "device": device,
        "cuda_available": torch.cuda.is_available(),
    }
    if device.startswith("cuda") and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
        info["cuda"] = torch.version.cuda
        info["cudnn_tf32"] = torch.backends.cudnn.allow_tf32
        info["matmul_tf32"] = torch.backends.cuda.matmul.allow_tf32
    from importlib import metadata

    for dist in ("s3prl", "torchaudio", "transformers", "huggingface_hub", "soundfile", "tensorboardX"):
        try:
            info[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            info[dist] = None
    return info


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--corpora", type=Path, required=True, help="folder holding cremad/ (generated beforehand)")
    parser.add_argument("--out", type=Path, required=True, help="cuda_check.json and cuda_check.log go here")
    parser.add_argument("--work", type=Path, help="scratch folder (default: a temporary one)")
    parser.add_argument("--steps", type=int, default=20, help="pre-training steps per run")
    parser.add_argument("--runner-steps", type=int, default=40, help="runner steps (dev and test at half and end)")
    parser.add_argument("--only", default="a,b,c,d", help="comma-separated subset of the check groups a,b,c,d")
    args = parser.parse_args(argv)
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))  # check the checkout, not an installed copy
    groups = set(args.only.split(","))
    corpus = (args.corpora / "cremad").resolve()
    args.out.mkdir(parents=True, exist_ok=True)
    work = Path(args.work or tempfile.mkdtemp(prefix="cuda_check-")).resolve()
    work.mkdir(parents=True, exist_ok=True)
    device = args.device

    import torch

    torch.set_num_threads(min(8, torch.get_num_threads()))
    checks = Checks()
    env = checks.run("env", lambda: {"status": "INFO", **environment(device)})
    if device.startswith("cuda") and not torch.cuda.is_available():
        print("cuda_check: CUDA is not available to torch", file=sys.stderr)
    shims = checks.run("register (compat shims)", lambda: {"applied": _register()})
    del env, shims
    ckpts: Dict[str, Path] = {}

    def _checkpoints() -> Dict[str, object]:
        ckpts.update(write_checkpoints(work, corpus))
        return {"written": sorted(ckpts)}

    checks.run("write random checkpoints", _checkpoints)
    if "a" in groups:
        wavs = pick_wavs(corpus)
        for name in ("emoaware_fbank", "ems_mockingjay_local", "ems_npc_local", "emo_ecapa_local"):
            if name != "emoaware_fbank" and name not in ckpts:
                checks.run(f"a. upstream {name}", lambda: {"status": "SKIP", "error": "no checkpoint"})
                continue
            checks.run(
                f"a. upstream {name}",
                lambda name=name: {
                    "samples": [len(w) for w in wavs],
                    **check_upstream(name, ckpts.get(name), wavs, device),
                },
            )
    if "b" in groups:
        for config in ("ems_mockingjay_small", "ems_npc_small"):
            checks.run(f"b. pretrain {config}", lambda c=config: check_pretrain(c, corpus, work, device, args.steps))
        checks.run(
            "b. pretrain ecapa_speaker_tiny (CLI)", lambda: check_pretrain_ecapa(corpus, work, device, args.steps)
        )
        checks.run("b. torchrun --nproc_per_node 1", lambda: check_torchrun(corpus, work, device, args.steps))
    if "c" in groups:
        checks.run("c. StrengthNet CLIs (train, intensity)", lambda: check_strengthnet_cli(corpus, work, device))
        checks.run("c. StrengthNet curves CPU vs dev", lambda: check_strengthnet_curves(corpus, work, device))
        checks.run("c. StrengthNet training steps", lambda: check_strengthnet_training(corpus, device))
    if "d" in groups:
        if "ems_mockingjay_local" in ckpts:
            checks.run(
                "d. run-downstream emotion_cremad cache on/off",
                lambda: check_runner(corpus, work, device, ckpts["ems_mockingjay_local"], args.runner_steps),
            )
    print_table(checks.rows)
    failed = [r["check"] for r in checks.rows if r["status"] == "FAIL"]
    report = {"device": device, "work": str(work), "rows": checks.rows, "failed": failed}
    (args.out / "cuda_check.json").write_text(json.dumps(report, indent=1, default=str))
    (args.out / "cuda_check.log").write_text("\n".join(_LOG))
    print(f"\n{len(checks.rows)} rows, {len(failed)} FAIL; {args.out / 'cuda_check.json'}")
    return 1 if failed else 0


def _register() -> List[str]:
    import s3prl_emoaware
    from s3prl_emoaware.s3prl_adapters.compat import apply_all

    s3prl_emoaware.register()
    return apply_all()


if __name__ == "__main__":
    sys.exit(main())
