"""Faults: SIGINT / SIGTERM / kill -9 of long jobs, a full disk, two writers of one folder, a lost rank.

Signals are real: sent to a CLI child process (after its first checkpoint, at a moment the test
does not choose), or to this process at a fixed step for the in-process probes. "Exact" resume
is checked on the final weights (every tensor equal) and the losses of the steps after the cut.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from subprocess_env import PYTHON, REPO_ROOT, child_env, child_torch_threads

from s3prl_emoaware.cli.main import main
from s3prl_emoaware.config import load_config, shipped_config
from s3prl_emoaware.pretraining.run import pretrain
from s3prl_emoaware.pretraining.trainer import PretrainRecipe, Trainer
from s3prl_emoaware.utils.atomic import (
    DiskFullError,
    atomic_torch_save,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
)
from s3prl_emoaware.utils.locks import LOCK_NAME, FolderLock, FolderLockedError, folder_lock
from s3prl_emoaware.utils.signals import Interrupted, terminate_as_interrupt

from .cli_lines import assert_one_line, run_cli

MOCKINGJAY = ["-c", str(shipped_config("upstream_configs", "ems_mockingjay_tiny")), "-o", "masking.strategy=random"]
SPEAKER = ["-c", str(shipped_config("upstream_configs", "ecapa_speaker_tiny")), "-o", "objective.crop_frames=60"]


def _clusters(corpus, path: Path) -> Path:
    from s3prl_emoaware.corpora.reader import read_corpus

    codes = {"neu": 0, "sad": 0, "hap": 1, "ang": 1}
    path.write_text(
        json.dumps({"clusters": {u.utt_id: codes[u.emotion] for u in read_corpus(corpus) if u.emotion in codes}})
    )
    return path


def _weights(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)["model"]


def _same_weights(a: Path, b: Path) -> bool:
    wa, wb = _weights(a), _weights(b)
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


def _temporaries(folder: Path):
    return sorted(p.name for p in folder.rglob(".*.tmp"))


def _start(args, tmp_path: Path, name: str, program=("-m", "s3prl_emoaware.cli"), group=False) -> subprocess.Popen:
    """``python PROGRAM ARGS`` in the background, its output in ``tmp_path/<name>.log``; ``group``:
    in a process group of its own (as a terminal's foreground job), which the test may signal whole."""
    log = open(tmp_path / f"{name}.log", "w")
    return subprocess.Popen(
        [PYTHON, *program, *args],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=child_env(),
        cwd=REPO_ROOT,
        start_new_session=group,
    )


def _cli(args, timeout: float = 600) -> subprocess.CompletedProcess:
    """``s3prl-emoaware ARGS`` in a child process, run to its end (output captured)."""
    return subprocess.run(
        [PYTHON, "-m", "s3prl_emoaware.cli", *args],
        capture_output=True,
        text=True,
        env=child_env(),
        cwd=REPO_ROOT,
        timeout=timeout,
    )


def _wait_file(path: Path, proc: subprocess.Popen, timeout: float = 120.0) -> None:
    end = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, f"the job ended (rc {proc.returncode}) before {path.name} appeared"
        assert time.monotonic() < end, f"{path} did not appear within {timeout} s"
        time.sleep(0.05)


def _documented_rerun(log: str) -> list:
    """The arguments of the ``resume with:`` command the interrupted job printed."""
    line = [ln for ln in log.splitlines() if "resume with:" in ln][-1]
    command = shlex.split(line.split("resume with:", 1)[1])
    assert command[0] == "s3prl-emoaware"
    return command[1:]


# --- SIGINT / SIGTERM / SIGKILL of pre-training CLI children --------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize(
    "sig,command,config",
    [
        pytest.param(
            signal.SIGINT,
            "pretrain",
            MOCKINGJAY,
            id="pretrain-mockingjay-SIGINT",
            marks=pytest.mark.probe(
                area="faults",
                probe="SIGINT during `pretrain` (Mockingjay MAM), after its first checkpoint",
                behaviour="last.ckpt saved at the step reached; one line "
                "'interrupted at step N (SIGINT); saved ...; resume with: <command>', exit "
                "130; that command finishes with the weights of an uninterrupted run",
            ),
        ),
        pytest.param(
            signal.SIGTERM,
            "train-speaker",
            SPEAKER,
            id="train-speaker-SIGTERM",
            marks=pytest.mark.probe(
                area="faults",
                probe="SIGTERM during `train-speaker` (ECAPA AAM-softmax)",
                behaviour="checkpoint, one 'interrupted at step N (SIGTERM)' line, exit 143; "
                "the printed command resumes to the uninterrupted run's weights",
            ),
        ),
    ],
)
def test_signal_saves_and_the_printed_command_resumes_exactly(tiny_iemocap, tmp_path, sig, command, config):
    steps = ["-o", "training.total_steps=12", "-o", "training.save_every=3"]
    recipe = load_config(PretrainRecipe, config[1], config[3::2] + steps[1::2])
    with child_torch_threads():  # the reference splits its sums as the children do
        pretrain(recipe, tiny_iemocap, tmp_path / "full", None)
    out = tmp_path / "cut"
    args = [command, "--corpus", str(tiny_iemocap), "--out", str(out), *config, *steps]
    proc = _start(args, tmp_path, "cut")
    _wait_file(out / "states-3.ckpt", proc)
    proc.send_signal(sig)
    rc = proc.wait(timeout=120)
    log = (tmp_path / "cut.log").read_text()
    assert rc == 128 + sig, log[-2000:]
    match = re.search(
        rf"s3prl-emoaware: interrupted at step (\d+) \({sig.name}\); "
        rf"saved {re.escape(str(out))}/last.ckpt; resume with: s3prl-emoaware ",
        log,
    )
    assert match, log[-2000:]
    step = int(match.group(1))
    assert 3 <= step < 12
    assert torch.load(out / "last.ckpt", weights_only=True)["step"] == step
    assert _temporaries(out) == []
    rerun = subprocess.run(
        [PYTHON, "-m", "s3prl_emoaware.cli", *_documented_rerun(log)],
        capture_output=True,
        text=True,
        env=child_env(),
        cwd=REPO_ROOT,
        timeout=300,
    )
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert f"resumed from {out}/last.ckpt at step {step}" in rerun.stderr
    assert _same_weights(out / "last.ckpt", tmp_path / "full" / "last.ckpt")


@pytest.mark.slow
@pytest.mark.parametrize(
    "command,config", [("pretrain", MOCKINGJAY), ("train-speaker", SPEAKER)], ids=["pretrain", "train-speaker"]
)
@pytest.mark.probe(
    area="faults",
    probe="kill -9 of `{command}` at a moment between (or during) checkpoints",
    behaviour="no partial file is trusted: last.ckpt is the last periodic one (loads, step a multiple "
    "of save_every); `--resume` removes the dead run's temporary files and ends with the weights of "
    "an uninterrupted run",
)
def test_kill_9_resumes_from_the_last_periodic_checkpoint(tiny_iemocap, tmp_path, command, config):
    # 40 steps, so that the kill lands well before the end even on a fast idle machine (CI ran
    # 10 tiny steps in 0.7 s): the kill must cut the run, not follow it.
    total = 40
    steps = ["-o", f"training.total_steps={total}", "-o", "training.save_every=2"]
    recipe = load_config(PretrainRecipe, config[1], [config[3], *steps[1::2]])
    with child_torch_threads():  # the reference splits its sums as the children do
        pretrain(recipe, tiny_iemocap, tmp_path / "full", None)
    out = tmp_path / "cut"
    args = [command, "--corpus", str(tiny_iemocap), "--out", str(out), *config, *steps]
    proc = _start(args, tmp_path, "cut")
    _wait_file(out / "states-2.ckpt", proc)
    time.sleep(0.15)  # somewhere in the next steps, maybe inside a save
    assert proc.poll() is None, "the run ended before the kill: the probe needs more steps"
    proc.kill()
    assert proc.wait(timeout=60) == -signal.SIGKILL
    step = torch.load(out / "last.ckpt", weights_only=True)["step"]
    assert step % 2 == 0 and step < total
    (out / ".last.ckpt.planted.tmp").write_bytes(b"half a checkpoint")  # as a kill inside a save leaves it
    rerun = subprocess.run(
        [PYTHON, "-m", "s3prl_emoaware.cli", *args, "--resume"],
        capture_output=True,
        text=True,
        env=child_env(),
        cwd=REPO_ROOT,
        timeout=300,
    )
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert f"at step {step}" in rerun.stderr and "took over the lock of pid" in rerun.stderr
    assert _temporaries(out) == []
    assert _same_weights(out / "last.ckpt", tmp_path / "full" / "last.ckpt")


# --- SIGINT / SIGTERM in-process, at a fixed step: every objective ---------------------------------
def _objectives(corpus, tmp_path):
    return {
        "mockingjay": ("ems_mockingjay_tiny", ["masking.strategy=random"]),
        "npc": ("ems_npc_tiny", ["masking.strategy=random"]),
        "speaker": ("ecapa_speaker_tiny", ["objective.crop_frames=60"]),
        "contrastive": ("emo_ecapa_tiny", [f"objective.clusters={_clusters(corpus, tmp_path / 'clusters.json')}"]),
    }


@pytest.mark.parametrize(
    "objective,sig",
    [
        ("mockingjay", signal.SIGTERM),
        ("npc", signal.SIGTERM),
        ("speaker", signal.SIGINT),
        ("contrastive", signal.SIGINT),
    ],
)
@pytest.mark.probe(
    area="faults",
    probe="{sig.name} to a `pretrain` ({objective}) process during step 4 of 6",
    behaviour="the step finishes, last.ckpt is saved at step 4, Interrupted (exit 128+signal); "
    "--resume repeats the losses of steps 5-6 and the final weights of an uninterrupted run",
)
def test_every_objective_stops_cleanly_and_resumes_exactly(tiny_iemocap, tmp_path, monkeypatch, objective, sig):
    config, overrides = _objectives(tiny_iemocap, tmp_path)[objective]
    recipe = load_config(
        PretrainRecipe,
        shipped_config("upstream_configs", config),
        [*overrides, "training.total_steps=6", "training.save_every=3", "training.num_workers=0"],
    )
    _, full = pretrain(recipe, tiny_iemocap, tmp_path / "full", None)
    original = Trainer.save

    def save_then_signal(self):
        path = original(self)
        if self.step == 3:
            os.kill(os.getpid(), sig)  # arrives before step 4 starts: step 4 still runs
        return path

    monkeypatch.setattr(Trainer, "save", save_then_signal)
    before = signal.getsignal(sig)
    with pytest.raises(Interrupted) as info:
        pretrain(recipe, tiny_iemocap, tmp_path / "cut", None)
    assert (info.value.signum, info.value.where, info.value.exit_code) == (sig, "step 4", 128 + sig)
    assert signal.getsignal(sig) is before  # the trainer's handler is gone again
    monkeypatch.setattr(Trainer, "save", original)
    assert torch.load(tmp_path / "cut" / "last.ckpt", weights_only=True)["step"] == 4
    _, rest = pretrain(recipe, tiny_iemocap, tmp_path / "cut", None, resume=True)
    assert [s for s, _ in rest] == [5, 6]
    assert [round(v, 6) for _, v in rest] == [round(v, 6) for _, v in full[4:]]
    assert _same_weights(tmp_path / "cut" / "last.ckpt", tmp_path / "full" / "last.ckpt")


@pytest.mark.slow
@pytest.mark.probe(
    area="faults",
    probe="SIGINT to `train-strengthnet` in the middle of epoch 2",
    behaviour="the batch finishes, resume.ckpt is saved, Interrupted (exit 130); --resume repeats the "
    "remaining losses of an uninterrupted run and ends with its checkpoint and metrics",
)
def test_strengthnet_stops_cleanly_and_resumes_exactly(tiny_iemocap, tmp_path, monkeypatch):
    from s3prl_emoaware.intensity import train as sn

    recipe = load_config(
        sn.StrengthNetRecipe,
        shipped_config("upstream_configs", "strengthnet_tiny"),
        ["training.epochs=3", "training.patience=5"],
    )
    loss, losses = sn._loss, []

    def recorded(model, *args, signal_at=None):
        value = loss(model, *args)
        if model.training:
            losses.append(round(value[0].item(), 6))
            if len(losses) == signal_at:
                os.kill(os.getpid(), signal.SIGINT)
        return value

    monkeypatch.setattr(sn, "_loss", recorded)
    full_metrics = sn.train_strengthnet(tiny_iemocap, tmp_path / "full", recipe)
    full, per_epoch = list(losses), len(losses) // 3
    losses.clear()
    monkeypatch.setattr(sn, "_loss", lambda *a: recorded(*a, signal_at=per_epoch + 2))
    with pytest.raises(Interrupted) as info:
        sn.train_strengthnet(tiny_iemocap, tmp_path / "cut", recipe)
    assert info.value.where == "epoch 1, batch 2" and info.value.exit_code == 130
    monkeypatch.setattr(sn, "_loss", recorded)
    metrics = sn.train_strengthnet(tiny_iemocap, tmp_path / "cut", recipe, resume=True)
    assert losses == full
    assert metrics == full_metrics
    assert _same_weights(tmp_path / "cut" / "strengthnet.ckpt", tmp_path / "full" / "strengthnet.ckpt")


# --- intensity extraction -------------------------------------------------------------------------
def _cache_arrays(cache: Path) -> dict:
    index = json.loads((cache / "index.json").read_text())
    return {u: np.load(cache / item["file"]) for u, item in index["items"].items()}


@pytest.mark.probe(
    area="faults",
    probe="SIGTERM to `intensity` extraction after 5 curves",
    behaviour="KeyboardInterrupt unwinds (the index is flushed with the finished curves); the re-run "
    "computes only the rest; the cache equals an uninterrupted one",
)
def test_intensity_sigterm_flushes_and_the_rerun_completes(tiny_iemocap, tmp_path, monkeypatch):
    from s3prl_emoaware.intensity import cache as cache_module
    from s3prl_emoaware.intensity.extract import extract_intensities

    extract_intensities(tiny_iemocap, tmp_path / "full", source="energy", n_jobs=1)
    original, added = cache_module.IntensityCacheWriter.add, []

    def add_then_signal(self, *args, **kwargs):
        original(self, *args, **kwargs)
        added.append(args[0])
        if len(added) == 5:
            os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(cache_module.IntensityCacheWriter, "add", add_then_signal)
    with terminate_as_interrupt(), pytest.raises(KeyboardInterrupt):  # as the CLI runs every command
        extract_intensities(tiny_iemocap, tmp_path / "cut", source="energy", n_jobs=1)
    monkeypatch.setattr(cache_module.IntensityCacheWriter, "add", original)
    assert 5 <= len(_cache_arrays(tmp_path / "cut")) < len(_cache_arrays(tmp_path / "full"))
    counts = extract_intensities(tiny_iemocap, tmp_path / "cut", source="energy", n_jobs=1)
    assert counts["new"] == len(_cache_arrays(tmp_path / "full")) - len(added)
    full, cut = _cache_arrays(tmp_path / "full"), _cache_arrays(tmp_path / "cut")
    assert full.keys() == cut.keys() and all(np.array_equal(full[k], cut[k]) for k in full)


_KILL_AFTER = """
import os, signal, sys
from s3prl_emoaware.intensity import cache
add = cache.IntensityCacheWriter.add
def add_then_die(self, *args, **kwargs):
    add(self, *args, **kwargs)
    if len(self.items) == int(os.environ["KILL_AFTER"]):
        os.kill(os.getpid(), signal.SIGKILL)
cache.IntensityCacheWriter.add = add_then_die
from s3prl_emoaware.cli.main import main
sys.exit(main())
"""


@pytest.mark.probe(
    area="faults",
    probe="kill -9 of `intensity` extraction after 7 curves (index not yet flushed)",
    behaviour="the curves on disk are whole; those missing from the index are recomputed; the re-run "
    "ends with the cache an uninterrupted run makes",
)
def test_intensity_kill_9_leaves_a_cache_the_rerun_completes(tiny_iemocap, tmp_path):
    from s3prl_emoaware.intensity.extract import extract_intensities

    extract_intensities(tiny_iemocap, tmp_path / "full", source="energy", n_jobs=1)
    script = tmp_path / "child.py"
    script.write_text(_KILL_AFTER)
    args = ["intensity", "--corpus", str(tiny_iemocap), "--out", str(tmp_path / "cut"), "--source", "energy"]
    proc = subprocess.run(
        [PYTHON, str(script), *args],
        env=child_env(KILL_AFTER="7"),
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    assert len(list((tmp_path / "cut" / "arrays").glob("*.npy"))) == 7
    rerun = subprocess.run(
        [PYTHON, "-m", "s3prl_emoaware.cli", *args],
        env=child_env(),
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    full, cut = _cache_arrays(tmp_path / "full"), _cache_arrays(tmp_path / "cut")
    assert full.keys() == cut.keys() and all(np.array_equal(full[k], cut[k]) for k in full)
    assert _temporaries(tmp_path / "cut") == []


def _downstream_override(corpus: Path, total_steps: int) -> str:
    """The runner's ``-o`` for a short emotion run on ``corpus``, a checkpoint every 2 steps."""
    return (
        f"config.runner.total_steps={total_steps},,config.runner.eval_step=1000,,config.runner.save_step=2,,"
        "config.runner.log_step=10,,config.runner.gradient_accumulate_steps=1,,config.runner.max_keep=20,,"
        f"config.downstream_expert.datarc.root='{corpus}',,"
        f"config.downstream_expert.datarc.meta_data='{corpus / 'meta_data'}',,"
        "config.downstream_expert.datarc.num_workers=0"
    )


def _downstream_args(corpus: Path, expdir: Path, total_steps: int = 30) -> list:
    """``run-downstream`` of that short emotion run into ``expdir``."""
    override = _downstream_override(corpus, total_steps)
    return ["run-downstream", "--skip-audio-check", "-m", "train", "-u", "emoaware_fbank", "-d", "emotion"] + [
        "-o",
        override,
        "-p",
        str(expdir),
        "--device",
        "cpu",
    ]


def _runner_checkpoint(path: Path) -> dict:
    import argparse

    with torch.serialization.safe_globals([argparse.Namespace]):  # the runner saves its args in it
        return torch.load(path, map_location="cpu", weights_only=True)


def _runner_states(expdir: Path) -> list:
    """(step recorded inside, path) of every states-*.ckpt of ``expdir``, in step order; each one loads."""
    states = sorted(expdir.glob("states-*.ckpt"), key=lambda p: int(p.stem.split("-")[1]))
    return [(_runner_checkpoint(p)["Step"], p) for p in states]


@pytest.mark.slow
@pytest.mark.probe(
    area="faults",
    probe="kill -9 of `run-downstream` (the stock runner) the moment its first states-*.ckpt appears",
    behaviour="every checkpoint under its name is whole (the runner's "
    "torch.save is atomic in our launcher); `-e` of the last one resumes and the run finishes",
)
def test_run_downstream_kill_9_leaves_whole_checkpoints(tiny_iemocap, tmp_path):
    expdir = tmp_path / "exp"
    proc = _start(_downstream_args(tiny_iemocap, expdir), tmp_path, "run", group=True)
    _wait_file(expdir / "states-2.ckpt", proc, timeout=240)
    os.killpg(proc.pid, signal.SIGKILL)  # the CLI and the runner child it started
    proc.wait(timeout=60)
    time.sleep(0.5)
    states = _runner_states(expdir)
    assert states and [s for s, _ in states] == [int(p.stem.split("-")[1]) for _, p in states]
    resume = ["run-downstream", "--skip-audio-check", "-m", "train", "-e", str(states[-1][1]), "--device", "cpu"]
    rerun = _cli(resume)
    assert rerun.returncode == 0, rerun.stdout[-2000:] + rerun.stderr[-2000:]
    assert (expdir / "states-30.ckpt").is_file()


@pytest.mark.slow
@pytest.mark.parametrize(
    "sig,how",
    [
        pytest.param(signal.SIGINT, "Ctrl-C: to the CLI and its runner child", id="SIGINT"),
        pytest.param(signal.SIGTERM, "a scheduler's kill of the CLI's pid", id="SIGTERM"),
    ],
)
@pytest.mark.probe(
    area="faults",
    probe="{id} to `run-downstream` (the stock runner) after its first states-*.ckpt ({how})",
    behaviour="the runner finishes its step and saves states-N.ckpt (whole; the run's own save_step inside); "
    "exit 128+signal; no traceback; one line 'interrupted at step N ({id}); saved EXPDIR/states-N.ckpt; "
    "resume with: s3prl-emoaware run-downstream ... -e EXPDIR/states-N.ckpt'; that command resumes at N and finishes",
)
def test_run_downstream_signal_saves_and_the_printed_command_resumes(tiny_iemocap, tmp_path, sig, how):
    expdir, total = tmp_path / "exp", 40
    proc = _start(_downstream_args(tiny_iemocap, expdir, total), tmp_path, "run", group=True)
    _wait_file(expdir / "states-2.ckpt", proc, timeout=240)
    if sig == signal.SIGINT:
        os.killpg(proc.pid, sig)  # the terminal sends Ctrl-C to every process of the group
    else:
        proc.send_signal(sig)  # the CLI passes it on to the runner
    rc = proc.wait(timeout=240)
    log = (tmp_path / "run.log").read_text()
    assert rc == 128 + sig, log[-3000:]
    assert "Traceback" not in log, log[-3000:]
    lines = re.findall(r"s3prl-emoaware: [^\r\n]*", log)
    assert len(lines) == 1, lines
    match = re.fullmatch(
        rf"s3prl-emoaware: interrupted at step (\d+) \({sig.name}\); saved ({re.escape(str(expdir))}/states-(\d+)"
        r"\.ckpt); resume with: s3prl-emoaware run-downstream .* -e (\S+)",
        lines[0],
    )
    assert match, lines[0]
    step, checkpoint = int(match.group(1)), match.group(2)
    assert int(match.group(3)) == step and match.group(4) == checkpoint and 2 <= step < total
    states = _runner_states(expdir)
    assert states[-1] == (step, Path(checkpoint)) and _temporaries(expdir) == []
    # the run's own save_step, not the stop's save-this-step value
    assert _runner_checkpoint(Path(checkpoint))["Config"]["runner"]["save_step"] == 2
    rerun = _cli(_documented_rerun(lines[0]))
    assert rerun.returncode == 0, rerun.stdout[-2000:] + rerun.stderr[-2000:]
    assert f"[Runner] - Resume from {checkpoint}" in rerun.stdout
    assert (expdir / f"states-{total}.ckpt").is_file()


@pytest.mark.parametrize(
    "command,rerun",
    [
        (["demo", "--out", "d"], "s3prl-emoaware demo --out d"),
        (
            ["train-speaker", "--corpus", "c d", "--out", "o"],
            "s3prl-emoaware train-speaker --corpus 'c d' --out o --resume",
        ),
    ],
    ids=["demo", "train-speaker"],
)
@pytest.mark.probe(
    area="faults",
    probe="a trainer interrupted inside `{id}`",
    behaviour="the printed re-run is a command that exists: --resume only where the command has it "
    "(a demo re-run skips its finished stages by itself); exit 143 for SIGTERM",
)
def test_the_printed_rerun_is_a_valid_command(monkeypatch, capsys, command, rerun):
    import importlib

    module = importlib.import_module(f"s3prl_emoaware.cli.{command[0].replace('-', '_')}")

    def interrupted(args):
        raise Interrupted(signal.SIGTERM, "step 4", "o/last.ckpt")

    monkeypatch.setattr(module, "run", interrupted)
    assert main(command) == 143
    assert capsys.readouterr().err.strip().endswith(f"resume with: {rerun}")


# --- demo stages ----------------------------------------------------------------------------------
_STAGES = """
import os, signal, sys
from pathlib import Path
from s3prl_emoaware.demo.stages import Stage, run_stages
from s3prl_emoaware.utils.atomic import atomic_write_text
out = Path(sys.argv[1])
def stage(name):
    def run():
        with open(out / "ran.txt", "a") as f:
            f.write(name + "\\n")
        if name == os.environ.get("DIE_IN"):
            os.kill(os.getpid(), signal.SIGKILL)
        atomic_write_text(out / f"{name}.txt", name)
        return {"name": name}
    return Stage(name, f"stage {name}", run)
out.mkdir(exist_ok=True)
run_stages([stage(n) for n in ("a", "b", "c")], out)
"""


@pytest.mark.probe(
    area="faults",
    probe="kill -9 of a `demo` inside its second stage",
    behaviour="the finished stage keeps its marker and is skipped on the re-run; the killed stage "
    "has no marker and runs again; the re-run completes every stage",
)
def test_demo_stages_resume_after_kill_9(tmp_path):
    script, out = tmp_path / "stages.py", tmp_path / "demo"
    script.write_text(_STAGES)
    killed = subprocess.run(
        [PYTHON, str(script), str(out)], env=child_env(DIE_IN="b"), cwd=REPO_ROOT, capture_output=True, timeout=120
    )
    assert killed.returncode == -signal.SIGKILL
    assert sorted(p.name for p in (out / "stages").iterdir()) == ["a.json"]
    rerun = subprocess.run(
        [PYTHON, str(script), str(out)], env=child_env(), cwd=REPO_ROOT, capture_output=True, timeout=120
    )
    assert rerun.returncode == 0
    assert (out / "ran.txt").read_text().split() == ["a", "b", "b", "c"]
    assert sorted(p.name for p in (out / "stages").iterdir()) == ["a.json", "b.json", "c.json"]


_DEMO_SUPERB = """
import sys
from pathlib import Path
from s3prl_emoaware.demo import pipeline
from s3prl_emoaware.demo.downstream import TaskSpec, UpstreamSpec, run_upstream
from s3prl_emoaware.demo.stages import Stage
from s3prl_emoaware.s3prl_adapters.runner import shipped_downstream_config
from s3prl_emoaware.utils.atomic import atomic_write_text
override = sys.argv[1]
def stages(cfg, out):  # the demo's SUPERB stage for one upstream, on one short emotion run
    task = TaskSpec("emotion", str(shipped_downstream_config("emotion")), override)
    up = UpstreamSpec("emoaware_fbank", "emoaware_fbank")
    table = lambda: atomic_write_text(out / "leaderboard" / "leaderboard.md", "| table |\\n") and None
    return [
        Stage("downstream_emoaware_fbank", "SUPERB run", lambda: run_upstream(up, [task], out / "downstream")),
        Stage("leaderboard", "the table", table),
    ]
pipeline.build_stages = stages
from s3prl_emoaware.cli.main import main
sys.exit(main(sys.argv[2:]))
"""


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
@pytest.mark.probe(
    area="faults",
    probe="{id} to a `demo` inside a SUPERB downstream stage (the stock runner training in its child)",
    behaviour="the runner child stops too (nothing left running); exit 128+signal, no traceback, one line "
    "'interrupted at runner batch step 1 of 2 ({id}); resume with: s3prl-emoaware demo --out ...'; the stage "
    "has no marker; that re-run starts the unfinished run over in an emptied folder and completes every stage",
)
def test_demo_interrupted_in_a_superb_stage_redoes_it(tiny_iemocap, tmp_path, sig):
    script, out = tmp_path / "demo.py", tmp_path / "demo"
    script.write_text(_DEMO_SUPERB)
    override = _downstream_override(tiny_iemocap, total_steps=40)
    command = [override, "demo", "--out", str(out), "--quick"]
    proc = _start(command, tmp_path, "demo", program=[str(script)], group=True)
    expdir = out / "downstream" / "emoaware_fbank" / "emotion"
    _wait_file(expdir / "states-2.ckpt", proc, timeout=240)
    if sig == signal.SIGINT:
        os.killpg(proc.pid, sig)  # Ctrl-C reaches the demo and its runner child
    else:
        proc.send_signal(sig)  # a scheduler's kill of the demo's pid
    rc = proc.wait(timeout=240)
    log = (tmp_path / "demo.log").read_text()
    assert rc == 128 + sig and "Traceback" not in log, log[-3000:]
    assert re.findall(r"s3prl-emoaware: [^\r\n]*", log) == [
        f"s3prl-emoaware: interrupted at runner batch step 1 of 2 ({sig.name}); "
        f"resume with: s3prl-emoaware demo --out {out} --quick"
    ]
    assert not (out / "stages" / "downstream_emoaware_fbank.json").exists()
    written = sorted((p.name, p.stat().st_mtime_ns) for p in expdir.iterdir())
    time.sleep(1.0)
    assert sorted((p.name, p.stat().st_mtime_ns) for p in expdir.iterdir()) == written  # no runner still writing
    assert all(step < 40 for step, _ in _runner_states(expdir)) and _temporaries(out) == []
    rerun = subprocess.run(
        [PYTHON, str(script), *command], capture_output=True, text=True, env=child_env(), cwd=REPO_ROOT, timeout=600
    )
    assert rerun.returncode == 0, rerun.stdout[-2000:] + rerun.stderr[-2000:]
    assert f"{expdir}: unfinished run, removed to start over" in rerun.stderr
    assert sorted(p.name for p in (out / "stages").iterdir()) == ["downstream_emoaware_fbank.json", "leaderboard.json"]
    assert (expdir / "evaluated_best.json").is_file() and [s for s, _ in _runner_states(expdir)][-1] == 40
    assert len(list(expdir.glob("events.out.tfevents.*"))) == 1  # the stopped run's logs are gone with it


# --- a full disk ----------------------------------------------------------------------------------
def _full(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def _torch_save_half(obj, f, *args, **kwargs):
    f.write(b"PK\x03\x04 half a zip")
    _full()


@pytest.mark.parametrize("writer", ["text", "json", "torch", "bytes"])
@pytest.mark.probe(
    area="faults",
    probe="no space left on device while an atomic writer ({writer}) writes",
    behaviour="one DiskFullError line naming the target; the previous file is untouched; no temporary file is left",
)
def test_full_disk_is_one_line_and_leaves_nothing(tmp_path, monkeypatch, writer):
    target = tmp_path / "out" / "result.bin"
    atomic_write_text(target, "the previous result")
    if writer == "torch":
        monkeypatch.setattr(torch, "save", _torch_save_half)
        write = lambda: atomic_torch_save({"x": torch.zeros(3)}, target)  # noqa: E731
    elif writer == "bytes":  # the intensity cache's curves: the second block of a write finds the disk full
        real_write = os.write
        blocks = []

        def write_block(fd, data):
            blocks.append(len(data))
            return real_write(fd, data[:4096]) if len(blocks) == 1 else _full()

        monkeypatch.setattr(os, "write", write_block)
        write = lambda: atomic_write_bytes(target, b"x" * 10000)  # noqa: E731
    else:
        monkeypatch.setattr(Path, "write_text", _full)
        write = (
            (lambda: atomic_write_text(target, "new"))
            if writer == "text"
            else (lambda: atomic_write_json(target, {"new": 1}))
        )
    with pytest.raises(DiskFullError) as info:
        write()
    message = str(info.value)
    assert message.startswith(f"{target}: no space left on device") and "\n" not in message
    monkeypatch.undo()
    assert target.read_text() == "the previous result"
    assert _temporaries(tmp_path) == []


@pytest.mark.probe(
    area="faults",
    probe="disk full at `pretrain`'s first checkpoint",
    behaviour="exit 2, one line 's3prl-emoaware: error: .../states-3.ckpt: no space left on device'; "
    "no states-3.ckpt, last.ckpt or temporary file left behind",
)
def test_pretrain_on_a_full_disk(tiny_iemocap, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(torch, "save", _torch_save_half)
    out = tmp_path / "exp"
    rc = main(
        ["pretrain", "--corpus", str(tiny_iemocap), "--out", str(out), *MOCKINGJAY, "-o", "training.num_workers=0"]
    )
    err = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert rc == 2
    assert err == [
        (
            f"s3prl-emoaware: error: {out / 'states-3.ckpt'}: no space left on device while writing it "
            "(nothing was written; free some space and re-run)"
        )
    ]
    assert not list(out.glob("*.ckpt")) and _temporaries(out) == []


@pytest.mark.probe(
    area="faults",
    probe="disk full while `intensity` writes a curve",
    behaviour="one DiskFullError line naming arrays/<utt>.npy; the index never lists that curve; the "
    "re-run (disk freed) completes the cache",
)
def test_intensity_on_a_full_disk(tiny_iemocap, tmp_path, monkeypatch):
    from s3prl_emoaware.intensity.extract import extract_intensities

    calls = []
    real_write = os.write

    def write_some(fd, data):  # the curve files' one write each (utils.atomic.atomic_write_bytes)
        calls.append(1)
        if len(calls) > 3:
            _full()
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", write_some)
    with pytest.raises(DiskFullError, match=r"/arrays/.*\.npy: no space left on device"):
        extract_intensities(tiny_iemocap, tmp_path / "cache", source="energy", n_jobs=1)
    monkeypatch.undo()
    assert len(json.loads((tmp_path / "cache" / "index.json").read_text())["items"]) == 3
    assert _temporaries(tmp_path / "cache") == []
    counts = extract_intensities(tiny_iemocap, tmp_path / "cache", source="energy", n_jobs=1)
    assert counts["failed"] == 0 and counts["total"] == counts["new"] + 3


_WRITES = re.compile(
    r"torch\.save\(|json\.dump\(|open\(.*[\"']w|sf\.write\(|\.write_text\(|\.write_bytes\(|"
    r"np\.save\(|savefig\(|\.to_csv\("
)


@pytest.mark.probe(
    area="faults",
    probe="every file write of the package (torch.save, json.dump, open(..., 'w'), "
    "sf.write, np.save, savefig, write_text) read from the source",
    behaviour="each goes to the temporary path of utils.atomic (or, for generated corpora, into the "
    "temporary folder renamed into place whole)",
)
def test_every_writer_of_the_package_is_atomic():
    package = REPO_ROOT / "s3prl_emoaware"
    direct = []
    for path in sorted(package.rglob("*.py")):
        rel = path.relative_to(package).as_posix()
        if rel == "utils/atomic.py" or rel.startswith("corpora/"):  # corpora: built in a temporary folder
            continue
        for n, line in enumerate(path.read_text().splitlines(), 1):
            # tmp: atomic_path's temporary file; f: a file object opened on it; buffer: an io.BytesIO whose
            # bytes go to atomic_write_bytes
            if _WRITES.search(line) and not re.search(r"\btmp\b|\(f\b|, f\)|\(buffer\b", line):
                direct.append(f"{rel}:{n}: {line.strip()}")
    assert direct == []
    synth = (package / "corpora" / "synth.py").read_text()
    assert "os.replace(tmp, out)" in synth


# --- two writers ----------------------------------------------------------------------------------
_HOLD = """
import sys, time
from s3prl_emoaware.utils.locks import FolderLock
lock = FolderLock(sys.argv[1], "test folder").acquire()
print("held", flush=True)
time.sleep(120)
"""


@pytest.fixture
def held_folder(tmp_path):
    """A folder locked by another live process: (folder, its pid)."""
    folder = tmp_path / "busy"
    holder = subprocess.Popen(
        [PYTHON, "-c", _HOLD, str(folder)], stdout=subprocess.PIPE, text=True, env=child_env(), cwd=REPO_ROOT
    )
    assert holder.stdout.readline().strip() == "held"
    yield folder, holder.pid
    holder.kill()
    holder.wait()


@pytest.mark.probe(
    area="faults",
    probe="a second `pretrain` into an output folder another process is writing",
    behaviour="exit 2, one line naming the folder and the holder's pid; nothing written there",
)
def test_second_pretrain_into_a_busy_folder_refuses(tiny_iemocap, held_folder, capsys):
    folder, pid = held_folder
    rc = main(["pretrain", "--corpus", str(tiny_iemocap), "--out", str(folder), *MOCKINGJAY])
    err = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert rc == 2 and len(err) == 1
    assert err[0].startswith(f"s3prl-emoaware: error: {folder}: pre-training output folder is in use by pid {pid} ")
    assert sorted(p.name for p in folder.iterdir()) == [LOCK_NAME]


@pytest.mark.parametrize("command", ["demo", "ems-study", "ser-study"])
@pytest.mark.probe(
    area="faults",
    probe="a second `{command}` into an output folder another one is writing",
    behaviour="exit 2, one line naming the folder and the holder's pid; nothing written there",
)
def test_second_demo_into_a_busy_folder_refuses(held_folder, capsys, command):
    folder, pid = held_folder
    line = assert_one_line(*run_cli(capsys, [command, "--out", folder, "--quick"]))
    assert line.startswith(f"s3prl-emoaware: error: {folder}: {command} output folder is in use by pid {pid} "), line
    assert sorted(p.name for p in folder.iterdir()) == [LOCK_NAME]


@pytest.mark.slow
@pytest.mark.probe(
    area="faults",
    probe="a second `run-downstream` into an experiment folder (-p) another runner is writing",
    behaviour="exit 2, one line naming the folder and the holder's pid, no traceback; the runner writes "
    "nothing there (no args/config copies, no checkpoint)",
)
def test_second_run_downstream_into_a_busy_expdir_refuses(tiny_iemocap, held_folder):
    folder, pid = held_folder
    proc = _cli(_downstream_args(tiny_iemocap, folder), timeout=300)
    line = assert_one_line(proc.returncode, proc.stderr)
    assert line.startswith(f"s3prl-emoaware: error: {folder}: downstream experiment folder is in use by pid {pid} ")
    assert sorted(p.name for p in folder.iterdir()) == [LOCK_NAME]


@pytest.mark.probe(
    area="faults",
    probe="a second `intensity` extraction into a cache another process is filling",
    behaviour="FolderLockedError: one line naming the cache folder and the holder's pid",
)
def test_second_extraction_into_a_busy_cache_refuses(tiny_iemocap, held_folder):
    from s3prl_emoaware.intensity.extract import extract_intensities

    folder, pid = held_folder
    with pytest.raises(FolderLockedError, match=rf"^{re.escape(str(folder))}: intensity cache is in use by pid {pid} "):
        extract_intensities(tiny_iemocap, folder, source="energy", n_jobs=1)
    assert not (folder / "index.json").exists()


@pytest.mark.probe(
    area="faults",
    probe="an output folder copied with hard links (`cp -al`) while the original is being written",
    behaviour="the copy is refused in one line that names the shared lock file and how to free it; once "
    "the original is free, the copy's writer gives it a lock file of its own, so the two copies run side by side",
)
def test_a_hard_linked_copy_of_a_folder_gets_a_lock_of_its_own(tmp_path, held_folder):
    original, pid = held_folder
    copy = tmp_path / "copy"
    copy.mkdir()
    os.link(original / LOCK_NAME, copy / LOCK_NAME)
    with pytest.raises(FolderLockedError) as refused:
        FolderLock(copy).acquire()
    message = str(refused.value)
    assert f"in use by pid {pid}" in message and "hard link shared with 1 other path" in message
    assert message.endswith(f"delete {copy / LOCK_NAME}") and "\n" not in message

    # a copy of a folder whose writer has finished: the copy's writer unshares the file and holds its own
    idle = tmp_path / "idle"
    with folder_lock(idle):
        (idle / "result.json").write_text("{}")
    twin = tmp_path / "twin"
    twin.mkdir()
    os.link(idle / LOCK_NAME, twin / LOCK_NAME)
    with folder_lock(twin):
        assert os.stat(twin / LOCK_NAME).st_ino != os.stat(idle / LOCK_NAME).st_ino
        assert os.stat(idle / LOCK_NAME).st_nlink == 1 and os.stat(twin / LOCK_NAME).st_nlink == 1
        with folder_lock(idle):  # the original is free while the copy is held
            pass
        with pytest.raises(FolderLockedError, match=f"in use by pid {os.getpid()}"):
            FolderLock(twin).acquire()  # and the copy's own lock holds
    assert sorted(p.name for p in twin.iterdir()) == [LOCK_NAME]  # no temporary left


@pytest.mark.probe(
    area="faults",
    probe="a lock file left by a process that died (kill -9), with its temporary files",
    behaviour="taken over with one log line naming the dead pid; its .tmp files are removed; a "
    "lock held by this process refuses a second holder",
)
def test_stale_lock_is_taken_over(tmp_path, caplog):
    dead = subprocess.Popen([PYTHON, "-c", "pass"])
    dead.wait()
    folder = tmp_path / "exp"
    folder.mkdir()
    (folder / LOCK_NAME).write_text(f"{dead.pid} somehost\n")
    (folder / ".last.ckpt.x1.tmp").write_bytes(b"half")
    with caplog.at_level("INFO"), folder_lock(folder, "output folder"):
        assert f"took over the lock of pid {dead.pid}" in caplog.text
        assert _temporaries(folder) == []
        with pytest.raises(FolderLockedError, match=f"in use by pid {os.getpid()}"):
            FolderLock(folder).acquire()
    FolderLock(folder).acquire().release()  # released at the end of the block


_PUT = """
import sys, torch
from pathlib import Path
from s3prl_emoaware.s3prl_adapters.hidden_cache import HiddenStateStore, states_digest
store = HiddenStateStore(Path(sys.argv[1]), "up", 1 << 30)
for i in range(60):
    key = f"{i:040d}"
    if store.get(key) is None:
        states = torch.full((2, 50, 8), float(i))
        store.put(key, {"states": states, "native": 50, "n_samples": 8000, "digest": states_digest(states)})
"""


@pytest.mark.probe(
    area="faults",
    probe="two processes filling the same hidden-state cache at once",
    behaviour="both finish; every entry is whole and holds its own states (entries are keyed by "
    "content and renamed into place whole)",
)
def test_two_writers_of_one_hidden_state_cache_both_finish(tmp_path):
    procs = [
        subprocess.Popen(
            [PYTHON, "-c", _PUT, str(tmp_path / "hc")],
            env=child_env(),
            cwd=REPO_ROOT,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    for p in procs:
        assert p.wait(timeout=120) == 0, p.stderr.read()[-2000:]
    from s3prl_emoaware.s3prl_adapters.hidden_cache import HiddenStateStore

    store = HiddenStateStore(tmp_path / "hc", "up", 1 << 30)
    for i in range(60):
        entry = store.get(f"{i:040d}")
        assert entry is not None and torch.equal(entry["states"], torch.full((2, 50, 8), float(i)))
    assert _temporaries(tmp_path / "hc") == []


# --- a rank that dies under torchrun --------------------------------------------------------------
_RANK_DIES = """
import os, sys
from s3prl_emoaware.pretraining import trainer
micro_batch = trainer.Trainer._micro_batch
def die_on_rank_1(self, index):
    if self.rank == 1 and index == 2:
        os._exit(3)
    return micro_batch(self, index)
trainer.Trainer._micro_batch = die_on_rank_1
from s3prl_emoaware.cli.main import main
sys.exit(main())
"""


@pytest.mark.slow
@pytest.mark.probe(
    area="faults",
    probe="under torchrun (gloo, 2 CPU processes) rank 1 dies at step 3",
    behaviour="the job ends within 60 s (training.dist_timeout_s bounds a collective), non-zero "
    "exit; rank 0 says in one line that it lost the other processes at step 3 and where to resume "
    "from; last.ckpt of step 2 is whole",
)
def test_a_dead_rank_ends_the_job_within_a_bound(tiny_iemocap, tmp_path):
    script, out = tmp_path / "child.py", tmp_path / "ddp"
    script.write_text(_RANK_DIES)
    start = time.monotonic()
    proc = subprocess.run(
        [
            PYTHON,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node",
            "2",
            "--master_port",
            "29761",
            str(script),
            "pretrain",
            "--corpus",
            str(tiny_iemocap),
            "--out",
            str(out),
            *MOCKINGJAY,
            "-o",
            "training.save_every=2",
            "-o",
            "training.total_steps=20",
            "-o",
            "training.dist_timeout_s=20",
            "-o",
            "training.num_workers=0",
        ],
        capture_output=True,
        text=True,
        env=child_env(),
        cwd=REPO_ROOT,
        timeout=240,
    )
    took = time.monotonic() - start
    assert proc.returncode != 0
    assert took < 60 + 30, f"{took:.0f} s"  # + torchrun's start-up on a loaded machine
    log = proc.stdout + proc.stderr
    assert re.search(
        r"s3prl-emoaware: error: rank 0 of 2: lost the other processes at step 3 \(.*\); another rank "
        rf"failed or was killed, see its log; resume from {re.escape(str(out))}/last.ckpt with --resume",
        log,
    ), log[-3000:]
    assert torch.load(out / "last.ckpt", weights_only=True)["step"] == 2


def _torchrun(script_args, out, port, tmp_path, name, extra=()):
    log = open(tmp_path / f"{name}.log", "w")
    return subprocess.Popen(
        [
            PYTHON,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node",
            "2",
            "--master_port",
            str(port),
            "-m",
            "s3prl_emoaware.cli",
            "pretrain",
            "--corpus",
            str(script_args),
            "--out",
            str(out),
            *MOCKINGJAY,
            "-o",
            "training.save_every=3",
            "-o",
            "training.total_steps=12",
            "-o",
            "training.num_workers=0",
            *extra,
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=child_env(),
        cwd=REPO_ROOT,
        start_new_session=True,
    )


@pytest.mark.slow
@pytest.mark.probe(
    area="faults",
    probe="SIGTERM to torchrun (2 gloo ranks) during `pretrain`, as a scheduler sends it",
    behaviour="both ranks stop after the same step, rank 0 saves last.ckpt and prints 'interrupted at "
    "step N (SIGTERM) ... resume with: torchrun ... --resume'; that re-run ends with the weights of an "
    "uninterrupted torchrun run",
)
def test_sigterm_under_torchrun_stops_every_rank_at_one_step(tiny_iemocap, tmp_path):
    full = _torchrun(tiny_iemocap, tmp_path / "full", 29781, tmp_path, "full")
    cut = _torchrun(tiny_iemocap, tmp_path / "cut", 29782, tmp_path, "cut")
    _wait_file(tmp_path / "cut" / "states-3.ckpt", cut, timeout=240)
    cut.send_signal(signal.SIGTERM)
    assert cut.wait(timeout=120) != 0
    assert full.wait(timeout=240) == 0, (tmp_path / "full.log").read_text()[-2000:]
    log = (tmp_path / "cut.log").read_text()
    match = re.search(
        r"s3prl-emoaware: interrupted at step (\d+) \(SIGTERM\); saved .*; resume with: "
        r"torchrun --nproc_per_node 2 -m s3prl_emoaware.cli pretrain .* --resume",
        log,
    )
    assert match, log[-3000:]
    assert torch.load(tmp_path / "cut" / "last.ckpt", weights_only=True)["step"] == int(match.group(1))
    resumed = _torchrun(tiny_iemocap, tmp_path / "cut", 29783, tmp_path, "resumed", ["--resume"])
    assert resumed.wait(timeout=240) == 0, (tmp_path / "resumed.log").read_text()[-2000:]
    assert _same_weights(tmp_path / "cut" / "last.ckpt", tmp_path / "full" / "last.ckpt")


@pytest.mark.probe(
    area="faults",
    probe="a run refused after taking the lock of a folder it created",
    behaviour="no folder is left behind (the lock file and the empty folder are removed); a folder "
    "that existed before stays, with an empty lock file",
)
def test_a_refused_run_leaves_no_folder(tmp_path):
    with pytest.raises(ValueError):
        with folder_lock(tmp_path / "new"):
            raise ValueError("refused")
    assert not (tmp_path / "new").exists()
    (tmp_path / "old").mkdir()
    with folder_lock(tmp_path / "old"):
        pass
    assert (tmp_path / "old" / LOCK_NAME).read_text() == ""


_ORPHAN = """
import os, sys, time
from s3prl_emoaware.utils.locks import FolderLock
lock = FolderLock(sys.argv[1]).acquire()
if os.fork() == 0:  # a worker the trainer forked: it shares the lock until it exits
    os.close(1), os.close(2)  # (so the test's pipe ends with the trainer)
    time.sleep(2.0)
    os._exit(0)
print(os.getpid(), flush=True)
os._exit(9)  # the trainer dies first (kill -9)
"""


@pytest.mark.probe(
    area="faults",
    probe="the lock of a killed trainer still shared by its forked DataLoader worker",
    behaviour="the next run waits until the orphan exits (seconds) and takes the lock over, instead "
    "of refusing in the name of a dead pid",
)
def test_lock_held_by_an_orphaned_worker_is_waited_for(tmp_path):
    proc = subprocess.run(
        [PYTHON, "-c", _ORPHAN, str(tmp_path / "exp")],
        capture_output=True,
        text=True,
        env=child_env(),
        cwd=REPO_ROOT,
        timeout=60,
    )
    dead = int(proc.stdout.split()[0])
    start = time.monotonic()
    lock = FolderLock(tmp_path / "exp").acquire()
    waited = time.monotonic() - start
    lock.release()
    assert 0.5 < waited < 10, waited
    assert dead != os.getpid()


# --- kill -9 of train-strengthnet -----------------------------------------------------------------
_STRENGTHNET_DIES = """
import gc, os, signal, sys, time
from pathlib import Path
from s3prl_emoaware.intensity import train
loss, after = train._loss, []
def loss_then_die(model, *args):
    if model.training and (Path(os.environ["OUT"]) / "resume.ckpt").is_file():
        after.append(1)
        if len(after) == 3:  # the third batch after the first periodic resume.ckpt
            from tensorboardX import SummaryWriter
            time.sleep(0.3)
            for writer in [o for o in gc.get_objects() if isinstance(o, SummaryWriter)]:
                writer.flush()  # as a long run's events have reached the disk by the time it is killed
            os.kill(os.getpid(), signal.SIGKILL)
    return loss(model, *args)
train._loss = loss_then_die
from s3prl_emoaware.cli.main import main
sys.exit(main())
"""


@pytest.mark.slow
@pytest.mark.probe(
    area="faults",
    probe="kill -9 of `train-strengthnet` in epoch 2, after its first periodic resume.ckpt (its logs on disk)",
    behaviour="resume.ckpt is the whole state of epoch 1; the documented `--resume` re-run continues from it "
    "(epoch 1, batch 0), removes the dead run's temporary files and ends with the checkpoint, metrics and "
    "TensorBoard curves (every step once) of an uninterrupted run",
)
def test_strengthnet_kill_9_resumes_from_the_last_epoch(tiny_iemocap, tmp_path):
    from s3prl_emoaware.intensity.train import StrengthNetRecipe, train_strengthnet

    from .tb_events import visible_scalars

    config = shipped_config("upstream_configs", "strengthnet_tiny")
    overrides = ["training.epochs=3", "training.patience=5"]
    with child_torch_threads():  # the reference splits its sums as the children do
        train_strengthnet(tiny_iemocap, tmp_path / "full", load_config(StrengthNetRecipe, config, overrides))
    out, script = tmp_path / "cut", tmp_path / "child.py"
    script.write_text(_STRENGTHNET_DIES)
    args = ["train-strengthnet", "--corpus", str(tiny_iemocap), "--out", str(out), "-c", str(config)]
    args += [a for o in overrides for a in ("-o", o)]
    killed = subprocess.run(
        [PYTHON, str(script), *args], env=child_env(OUT=str(out)), cwd=REPO_ROOT, capture_output=True, timeout=300
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert torch.load(out / "resume.ckpt", weights_only=True)["epoch"] == 1
    (out / ".resume.ckpt.planted.tmp").write_bytes(b"half a checkpoint")  # as a kill inside a save leaves it
    rerun = subprocess.run(
        [PYTHON, "-m", "s3prl_emoaware.cli", *args, "--resume"],
        capture_output=True,
        text=True,
        env=child_env(),
        cwd=REPO_ROOT,
        timeout=300,
    )
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert f"resumed from {out / 'resume.ckpt'} at epoch 1, batch 0" in rerun.stderr
    assert "took over the lock of pid" in rerun.stderr
    assert _temporaries(out) == []
    full = json.loads((tmp_path / "full" / "metrics.json").read_text())
    assert json.loads((out / "metrics.json").read_text()) == full
    assert _same_weights(out / "strengthnet.ckpt", tmp_path / "full" / "strengthnet.ckpt")
    shown, expected = visible_scalars(out), visible_scalars(tmp_path / "full")
    assert shown.keys() == expected.keys()
    for tag, points in expected.items():
        assert [s for s, _ in shown[tag]] == [s for s, _ in points], tag  # no step twice, none missing
        np.testing.assert_allclose([v for _, v in shown[tag]], [v for _, v in points], rtol=1e-5, err_msg=tag)


# --- a full disk while TensorBoard logs are written ------------------------------------------------
_TENSORBOARD_FILLS = """
import errno, os, sys
from tensorboardX import record_writer
write, records = record_writer.RecordWriter.write, []
def write_until_full(self, data):
    records.append(1)
    if len(records) > int(os.environ["FULL_AFTER"]):
        raise OSError(errno.ENOSPC, "No space left on device")
    return write(self, data)
record_writer.RecordWriter.write = write_until_full
from s3prl_emoaware.cli.main import main
sys.exit(main())
"""


@pytest.mark.parametrize(
    "command,config,overrides,result",
    [
        (
            "pretrain",
            "ems_mockingjay_tiny",
            ["masking.strategy=random", "training.total_steps=30", "training.num_workers=0"],
            "last.ckpt",
        ),
        ("train-strengthnet", "strengthnet_tiny", ["training.epochs=4", "training.patience=5"], "metrics.json"),
    ],
    ids=["pretrain", "train-strengthnet"],
)
@pytest.mark.probe(
    area="faults",
    probe="no space left on device while `{command}` writes its TensorBoard events (after 5 records)",
    behaviour="one warning line naming the events file ('TensorBoard logging stopped'), no traceback, no "
    "hang (the logger thread's queue keeps draining); the job finishes with whole checkpoints",
)
def test_full_disk_while_logging_to_tensorboard(tiny_iemocap, tmp_path, command, config, overrides, result):
    script, out = tmp_path / "child.py", tmp_path / "exp"
    script.write_text(_TENSORBOARD_FILLS)
    args = [command, "--corpus", str(tiny_iemocap), "--out", str(out)]
    args += ["-c", str(shipped_config("upstream_configs", config)), *[a for o in overrides for a in ("-o", o)]]
    try:
        proc = subprocess.run(
            [PYTHON, str(script), *args],
            env=child_env(FULL_AFTER="5"),
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=180,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"`{command}` hung after TensorBoard's writes failed")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if "TensorBoard logging stopped" in ln]
    assert len(lines) == 1 and re.search(r"/exp/events\.out\.tfevents\.\S+: no space left on device", lines[0]), lines
    assert (out / result).is_file() and _temporaries(out) == []
    if result == "last.ckpt":
        assert torch.load(out / "last.ckpt", weights_only=True)["step"] == 30


# --- a full disk, or kill -9, while synth-corpus generates a corpus ----------------------------------
def _tree(root: Path) -> dict:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _fill_after(monkeypatch, method: str, n: int) -> list:
    """``Path.<method>`` raises ENOSPC from its ``n + 1``-th call on (as a disk that fills up); the paths tried."""
    original, tried = getattr(Path, method), []

    def write_until_full(self, data, *args, **kwargs):
        tried.append(self)
        if len(tried) > n:
            _full()
        return original(self, data, *args, **kwargs)

    monkeypatch.setattr(Path, method, write_until_full)
    return tried


@pytest.mark.parametrize(
    "method,what,existing",
    [
        ("write_bytes", "an audio file", False),
        ("write_bytes", "an audio file", True),
        ("write_text", "its marker file (text)", False),
    ],
    ids=["audio", "audio-force-over-a-corpus", "text"],
)
@pytest.mark.probe(
    area="faults",
    probe="no space left on device while `synth-corpus` writes {what} ({id})",
    behaviour="exit 2, one line naming the corpus folder (and the file, for audio); the half-built folder is "
    "removed; nothing new under OUT (a corpus there before, with --force, is unchanged)",
)
def test_synth_corpus_on_a_full_disk(tiny_iemocap, tmp_path, monkeypatch, capsys, existing, method, what):
    out = tmp_path / "iemocap"
    before = None
    if existing:
        shutil.copytree(tiny_iemocap, out)
        before = _tree(out)
    tried = _fill_after(monkeypatch, method, 4 if method == "write_bytes" else 0)
    code, err = run_cli(capsys, ["synth-corpus", "iemocap", out, *(["--force"] if existing else [])])
    monkeypatch.undo()
    line = assert_one_line(code, err, f"{out}: no space left on device")
    if method == "write_bytes":
        assert str(tried[-1]) in line
    assert (_tree(out) == before) if existing else not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == (["iemocap"] if existing else [])


@pytest.mark.probe(
    area="faults",
    probe="kill -9 of `synth-corpus` while it writes its audio",
    behaviour="nothing under OUT (the corpus is built in a hidden folder beside it); the re-run removes the "
    "dead build's folder and writes the whole corpus, the files of an uninterrupted build",
)
def test_synth_corpus_kill_9_leaves_nothing_under_its_name(tiny_iemocap, tmp_path):
    out = tmp_path / "iemocap"
    proc = _start(["synth-corpus", "iemocap", str(out)], tmp_path, "synth")
    end = time.monotonic() + 120
    while not any(tmp_path.glob(".iemocap.tmp-*/Session1/sentences/wav/*/*.wav")):
        assert proc.poll() is None and time.monotonic() < end, "the build ended before any audio was written"
        time.sleep(0.02)
    proc.kill()
    proc.wait(timeout=60)
    assert not out.exists() and any(tmp_path.glob(".iemocap.tmp-*"))
    rerun = subprocess.run(
        [PYTHON, "-m", "s3prl_emoaware.cli", "synth-corpus", "iemocap", str(out)],
        capture_output=True,
        text=True,
        env=child_env(),
        cwd=REPO_ROOT,
        timeout=300,
    )
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "synth.log") == ["iemocap"]
    assert _tree(out) == _tree(tiny_iemocap)


@pytest.mark.probe(
    area="faults",
    probe="`run-downstream --all-folds` stopped at fold 3 of 5 (signal, kill or failure), then the same command again",
    behaviour="one line saying the same command keeps the folds already tested; the re-run trains only folds 3-5, "
    "fold 3 from an emptied folder, and scores all five (the kept folds' checkpoints read from their markers)",
)
def test_all_folds_rerun_keeps_the_tested_folds_and_restarts_the_rest(tmp_path, monkeypatch):
    """An --all-folds run stopped at fold 3 (signal, kill, failure): the same command again runs only folds 3-5,
    fold 3 from an emptied folder, and scores all five."""
    import json as _json
    from pathlib import Path

    from s3prl_emoaware.s3prl_adapters import runner

    base = tmp_path / "folds"
    calls = []

    def fake_batch(steps, workdir, cache_argv=()):
        """Each train step writes the fold's predictions; each evaluate step writes its marker. Stops at fold 3
        on the first call (its folder is left half-written)."""
        calls.append(steps)
        statuses = []
        for step in steps:
            if "evaluate_best" in step:
                expdir = Path(step["evaluate_best"])
                status = {"ok": True, "checkpoint": str(expdir / "dev-best.ckpt")}
                Path(step["marker"]).write_text(_json.dumps(status))
            else:
                expdir = Path(step["argv"][step["argv"].index("-p") + 1])
                expdir.mkdir(parents=True, exist_ok=True)
                if len(calls) == 1 and expdir.name == "fold3":
                    (expdir / "states-10.ckpt").write_text("half")
                    return statuses
                fold = expdir.name
                (expdir / f"test_{fold}_predict.txt").write_text("u1 neu\nu2 ang\n")
                (expdir / f"test_{fold}_truth.txt").write_text("u1 neu\nu2 neu\n")
                status = {"ok": True}
            statuses.append(status)
        return statuses

    monkeypatch.setattr(runner, "launch_batch", fake_batch)
    config = tmp_path / "emotion.yaml"
    config.write_text("downstream_expert:\n  datarc:\n    test_fold: fold1\n")
    argv = ["-m", "train", "-u", "fbank", "-d", "emotion", "-c", str(config), "-p", str(base), "--device", "cpu"]
    flags = runner.scan_flags(argv)
    with pytest.raises(runner.RunDownstreamError, match="keeps the folds already tested"):
        runner.run_all_folds(argv, flags)
    assert [Path(s["evaluate_best"]).name for s in calls[0] if "evaluate_best" in s] == [
        f"fold{k}" for k in range(1, 6)
    ]
    assert (base / "fold2" / "evaluated_best.json").is_file() and not (base / "fold3" / "evaluated_best.json").exists()
    summary = runner.run_all_folds(argv, flags)
    rerun = [Path(s["argv"][s["argv"].index("-p") + 1]).name for s in calls[1] if "evaluate_best" not in s]
    assert rerun == ["fold3", "fold4", "fold5"]
    assert not (base / "fold3" / "states-10.ckpt").exists()  # the half run was removed, not resumed into
    assert sorted(summary.folds) == [f"fold{k}" for k in range(1, 6)]
    assert summary.mean_acc == pytest.approx(0.5)
    assert summary.checkpoints["fold1"] == str(base / "fold1" / "dev-best.ckpt")  # read back from its marker
