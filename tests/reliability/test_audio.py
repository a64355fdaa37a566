"""Bad audio at every place the package reads audio (issue 18, item 1).

One planted copy of the tiny IEMOCAP corpus per module: some utterances' files are replaced by
a planted input (0 bytes, truncated, text, NaN, Inf, stereo, other rates, too short, silent, ten
minutes), files with spaces / non-ASCII names are added, and an AppleDouble ``._x.wav`` is put
beside a real file. Each site runs once over that corpus; each probe checks one plant there:
either it works (and the one line per corpus says what was done) or it is refused / skipped in
one line naming the file and the problem.
"""

from __future__ import annotations

import logging
import re
import shutil
from pathlib import Path
from typing import Tuple

import numpy as np
import pytest
import soundfile as sf

from s3prl_emoaware.corpora.reader import read_corpus
from s3prl_emoaware.utils.audio import AudioError, AudioReport, TooManyBadFilesError, read_audio, resample

RATES = (8000, 22050, 44100, 48000)

# plant -> (what is planted, refused-with fragment or None when it works, note kind when it works)
PLANTS = {
    "zero_bytes": ("a 0-byte .wav", "empty file (0 bytes)", None),
    "truncated": ("a WAV cut at 60% of its bytes", None, "truncated"),
    "text": ("a text file named .wav", "a text file, not audio", None),
    "nan": ("NaN samples (float WAV)", "NaN or infinite samples", None),
    "inf": ("Inf samples (float WAV)", "NaN or infinite samples", None),
    "stereo": ("a stereo file", None, "downmixed"),
    **{f"rate_{r}": (f"a {r / 1000:g} kHz file", None, "resampled") for r in RATES},
    "shorter_than_window": ("200 samples (< one 25 ms window)", "too short", None),
    "shorter_than_span": ("960 samples (4 frames < mask span 7)", None, None),
    "silent": ("an all-silent clip", None, None),
    "ten_minutes": ("a 10-minute clip", None, None),
    "space_name": ("a file name with spaces", None, None),
    "non_ascii_name": ("a non-ASCII file name (Ünïcödé)", None, None),
}
HEADER_BAD = ("zero_bytes", "text", "shorter_than_window")  # refused from the header alone
DECODE_BAD = ("nan", "inf")  # header fine, refused when decoded
REFUSED = HEADER_BAD + DECODE_BAD
WORKS = tuple(p for p in PLANTS if p not in REFUSED)
LONG = "ten_minutes"
FAST_WORKS = tuple(p for p in WORKS if p != LONG)
NEW_NAMES = {"space_name": "Ses01F_impro01_F777 with space", "non_ascii_name": "Ses01F_impro01_F778Ünïcödé"}


def _write_plant(kind: str, path: Path, wav: np.ndarray) -> None:
    if kind == "zero_bytes":
        path.write_bytes(b"")
    elif kind == "truncated":
        sf.write(str(path), wav, 16000, subtype="PCM_16")
        data = path.read_bytes()
        path.write_bytes(data[: int(len(data) * 0.6)])
    elif kind == "text":
        path.write_text("utt_id,label\nthis is not audio\n")
    elif kind in ("nan", "inf"):
        bad = wav.copy()
        bad[len(bad) // 2] = np.nan if kind == "nan" else np.inf
        sf.write(str(path), bad, 16000, subtype="FLOAT")
    elif kind == "stereo":
        sf.write(str(path), np.stack([wav, 0.5 * wav], axis=1), 16000, subtype="PCM_16")
    elif kind.startswith("rate_"):
        rate = int(kind.split("_")[1])
        sf.write(str(path), np.clip(resample(wav, 16000, rate), -1, 1), rate, subtype="PCM_16")
    elif kind == "shorter_than_window":
        sf.write(str(path), wav[:200], 16000, subtype="PCM_16")
    elif kind == "shorter_than_span":
        sf.write(str(path), wav[:960], 16000, subtype="PCM_16")
    elif kind == "silent":
        sf.write(str(path), np.zeros_like(wav), 16000, subtype="PCM_16")
    elif kind == "ten_minutes":
        sf.write(str(path), np.resize(wav, 600 * 16000), 16000, subtype="PCM_16")
    else:
        sf.write(str(path), wav, 16000, subtype="PCM_16")


@pytest.fixture(scope="module")
def planted(tiny_iemocap, tmp_path_factory):
    """(corpus root, {plant: path}, the AppleDouble path)."""
    root = tmp_path_factory.mktemp("planted") / "iemocap"
    shutil.copytree(tiny_iemocap, root)
    utts = [u for u in read_corpus(root) if u.emotion is not None]
    paths = {}
    replaced = [p for p in PLANTS if p not in NEW_NAMES]
    for kind, u in zip(replaced, utts[::2]):  # every other one: each speaker keeps good files
        wav, _ = sf.read(str(u.path), dtype="float32")
        _write_plant(kind, u.path, wav)
        paths[kind] = u.path
    good = utts[1]
    wav, _ = sf.read(str(good.path), dtype="float32")
    for kind, stem in NEW_NAMES.items():
        path = good.path.parent / f"{stem}.wav"
        _write_plant(kind, path, wav)
        paths[kind] = path
    apple = good.path.parent / f"._{good.path.name}"
    apple.write_bytes(b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        " + b"\x00" * 64)  # AppleDouble header
    return root, paths, apple


def _probe(site: str, plant: str, behaviour: str):
    return pytest.mark.probe(area="audio", probe=f"{site}: {PLANTS[plant][0]}", behaviour=behaviour)


def _cases(site: str, plants, works: str, refused: str, decode_refused: str = "", too_short=()):
    """One param per plant, its probe mark saying what must happen (``decode_refused``: for NaN / Inf,
    which only decoding finds, when that differs from what the header-bad files get)."""
    out = []
    for p in plants:
        fragment, note = PLANTS[p][1], PLANTS[p][2]
        if p in too_short:  # this site needs more frames than one window
            fragment, note = "too short", None
        if fragment:
            text = (decode_refused if decode_refused and p in DECODE_BAD else refused).format(fragment=fragment)
        else:
            text = works + (f", counted as {note} in the corpus line" if note else "")
        out.append(pytest.param(p, id=p, marks=_probe(site, p, text)))
    return out


def _one_line_naming(message: str, path: Path, fragment: str) -> None:
    assert "\n" not in message and str(path) in message and fragment in message, message


class _Lines(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.lines = []

    def emit(self, record):
        self.lines.append(record.getMessage())


def _capture(logger_name: str = "s3prl_emoaware"):
    handler = _Lines()
    log = logging.getLogger(logger_name)
    log.addHandler(handler)
    old = log.level
    log.setLevel(logging.INFO)
    return handler, lambda: (log.removeHandler(handler), log.setLevel(old))


# --- read_audio: the one reader ------------------------------------------------------------


@pytest.mark.parametrize(
    "plant",
    _cases(
        "read_audio", PLANTS, "mono float32 at 16 kHz, finite", "AudioError, one line naming the file: '{fragment}'"
    ),
)
def test_read_audio(planted, plant):
    _, paths, _ = planted
    path = paths[plant]
    report = AudioReport("probe", 16000)
    fragment, note = PLANTS[plant][1], PLANTS[plant][2]
    if fragment:
        with pytest.raises(AudioError) as err:
            read_audio(path, min_samples=400, report=report)
        _one_line_naming(str(err.value), path, fragment)
        return
    wav = read_audio(path, min_samples=400, report=report)
    assert wav.dtype == np.float32 and wav.ndim == 1 and np.isfinite(wav).all()
    info = sf.info(str(path))
    assert abs(len(wav) - info.frames * 16000 / info.samplerate) <= 1
    kinds = {kind for kind, _ in report.done}
    assert kinds == ({note} if note else set()), report.done


@pytest.mark.probe(
    area="audio",
    probe="read_audio: an AppleDouble ._x.wav read directly",
    behaviour="AudioError, one line naming the file: 'unreadable audio header'",
)
def test_read_audio_appledouble(planted):
    _, _, apple = planted
    with pytest.raises(AudioError) as err:
        read_audio(apple)
    _one_line_naming(str(err.value), apple, "unreadable audio header")


@pytest.mark.parametrize(
    "kind,fragment",
    [
        pytest.param(
            "flac_truncated",
            "unreadable audio, truncated or damaged",
            id="flac_truncated",
            marks=pytest.mark.probe(
                area="audio",
                probe="read_audio: a FLAC file cut at half its bytes (header intact)",
                behaviour="AudioError, one line naming the file: 'unreadable audio, truncated or damaged' (decoder's reason)",
            ),
        ),
        pytest.param(
            "folder",
            "a folder, not an audio file",
            id="folder",
            marks=pytest.mark.probe(
                area="audio", probe="read_audio: a folder named x.wav", behaviour="AudioError, one line: 'a folder'"
            ),
        ),
        pytest.param(
            "missing",
            "cannot open",
            id="missing",
            marks=pytest.mark.probe(
                area="audio",
                probe="read_audio: a path that does not exist",
                behaviour="AudioError, one line: 'cannot open'",
            ),
        ),
    ],
)
def test_read_audio_damaged_other(planted, tmp_path, kind, fragment):
    _, paths, _ = planted
    path = tmp_path / ("x.flac" if kind == "flac_truncated" else "x.wav")
    if kind == "flac_truncated":
        wav = read_audio(paths["space_name"])
        sf.write(
            str(path), np.resize(wav, 48000) + 0.01 * np.sin(np.arange(48000, dtype=np.float32)), 16000, format="FLAC"
        )
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
        assert sf.info(str(path)).frames == 48000  # the header still promises every sample
    elif kind == "folder":
        path.mkdir()
    with pytest.raises(AudioError) as err:
        read_audio(path)
    _one_line_naming(str(err.value), path, fragment)


@pytest.mark.probe(
    area="audio",
    probe="read_audio without a report: 48 kHz, stereo and truncated files",
    behaviour="each kind logged once per process (first file named), not once per file",
)
def test_read_audio_logs_once_per_kind(planted, tmp_path):
    from s3prl_emoaware.utils import audio

    _, paths, _ = planted
    audio._LOGGED.clear()
    handler, done = _capture("s3prl_emoaware.utils.audio")
    try:
        for _ in range(2):
            for plant in ("rate_48000", "stereo", "truncated"):
                read_audio(paths[plant])
    finally:
        done()
    assert len(handler.lines) == 3, handler.lines
    assert any("resampling 48000 Hz" in m for m in handler.lines) and any("downmixed" in m for m in handler.lines)


# --- corpus readers ------------------------------------------------------------------------


@pytest.mark.probe(
    area="audio",
    probe="corpus reader: an AppleDouble ._x.wav beside the real file",
    behaviour="not listed (hidden files are skipped by every layout); the real file is",
)
def test_reader_skips_appledouble(planted):
    root, _, apple = planted
    listed = {u.path.name for u in read_corpus(root)}
    assert apple.name not in listed and apple.name[2:] in listed


@pytest.mark.parametrize(
    "plant",
    [
        pytest.param(p, id=p, marks=_probe("corpus reader", p, "listed with its name as the utterance id; reads"))
        for p in NEW_NAMES
    ],
)
def test_reader_lists_odd_names(planted, plant):
    root, paths, _ = planted
    by_id = {u.utt_id: u for u in read_corpus(root)}
    u = by_id[NEW_NAMES[plant]]
    assert u.path == paths[plant].resolve() and read_audio(u.path).size > 0


# --- pre-training data -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def pretrain_index(planted):
    from s3prl_emoaware.features import FbankConfig
    from s3prl_emoaware.pretraining.data import build_dataset

    root, _, _ = planted
    handler, done = _capture()
    try:
        dataset = build_dataset(
            read_corpus(root), FbankConfig(), max_frames=1500, max_bad_fraction=0.5, what=f"{root} (pre-training)"
        )
    finally:
        done()
    return dataset, handler.lines


@pytest.mark.parametrize(
    "plant",
    _cases(
        "pre-training data",
        PLANTS,
        "indexed; features finite, cropped to max_frames",
        "left out of the index and listed ('{fragment}'), training goes on",
        "indexed (its header is fine); the item comes back as SkippedItem ('{fragment}'), dropped from the batch",
        too_short=("shorter_than_span",),
    ),
)
def test_pretraining_data(planted, pretrain_index, plant):
    from s3prl_emoaware.pretraining.data import PretrainItem, SkippedItem

    _, paths, _ = planted
    dataset, _ = pretrain_index
    path = paths[plant]
    index = {Path(e.path).name: i for i, e in enumerate(dataset.entries)}
    skipped = {reason.split(":")[0]: reason for reason in dataset.skipped.values()}
    if plant in HEADER_BAD or plant == "shorter_than_span":
        fragment = PLANTS[plant][1] or "too short"
        _one_line_naming(skipped[str(path)], path, fragment)
        assert path.name not in index
        return
    item = dataset[index[path.name]]
    if plant in DECODE_BAD:
        assert isinstance(item, SkippedItem)
        _one_line_naming(item.reason, path, PLANTS[plant][1])
        return
    assert isinstance(item, PretrainItem) and bool(np.isfinite(item.features.numpy()).all())
    assert item.features.shape[0] == dataset.entries[index[path.name]].num_frames <= 1500
    if plant == LONG:
        assert item.features.shape[0] == 1500


@pytest.mark.probe(
    area="audio",
    probe="pre-training data: a corpus with resampled, stereo, truncated, long files",
    behaviour="one log line for the corpus saying what was done (resampled per rate, downmixed, "
    "truncated, cropped) and one listing the skipped files",
)
def test_pretraining_corpus_line(planted, pretrain_index):
    root, _, _ = planted
    _, lines = pretrain_index
    corpus_lines = [m for m in lines if m.startswith(f"{root} (pre-training): ") and "resampled" in m]
    assert len(corpus_lines) == 1, lines
    line = corpus_lines[0]
    for word in ("downmixed", "truncated", "cropped", *(f"{r} Hz to 16000 Hz" for r in RATES)):
        assert word in line, line
    listed = [m for m in lines if "files skipped" in m]
    assert len(listed) == 1 and all(PLANTS[p][1] in listed[0] for p in HEADER_BAD), listed


@pytest.mark.probe(
    area="audio",
    probe="pre-training data: more bad files than training.max_bad_fraction",
    behaviour="TooManyBadFilesError: one line with the count and the first files, before any step",
)
def test_pretraining_threshold(planted):
    from s3prl_emoaware.features import FbankConfig
    from s3prl_emoaware.pretraining.data import build_dataset

    root, paths, _ = planted
    with pytest.raises(TooManyBadFilesError) as err:
        build_dataset(read_corpus(root), FbankConfig(), max_bad_fraction=0.02, what=str(root))
    message = str(err.value)
    assert "\n" not in message and "max_bad_fraction 0.02" in message and str(root) in message


def _pretrain_args(root: Path, out: Path, fraction: float) -> list:
    from s3prl_emoaware.config import shipped_config

    overrides = [
        "masking.strategy=random",
        "training.total_steps=8",
        "training.batch_size=8",
        "training.save_every=4",
        "training.num_workers=0",
        f"training.max_bad_fraction={fraction}",
    ]
    config = shipped_config("upstream_configs", "ems_mockingjay_tiny")
    return ["pretrain", "--corpus", str(root), "--out", str(out), "-c", str(config)] + [
        a for o in overrides for a in ("-o", o)
    ]


def _between(root: Path, pretrain_index) -> Tuple[int, int, float]:
    """(files, header-bad files, a max_bad_fraction the header scan passes and header + decode failures do not)."""
    n, header_bad = len(read_corpus(root)), len(pretrain_index[0].skipped)
    return n, header_bad, float(f"{(header_bad + 0.5) / n:.4f}")


@pytest.mark.slow
@pytest.mark.probe(
    area="audio",
    probe="pre-training on the planted corpus, training.max_bad_fraction above the header-bad share but below it "
    "with the NaN / Inf files (only decoding finds them)",
    behaviour="the files skipped while decoding count with those left out of the index: at the next checkpoint, "
    "exit 2, one line naming max_bad_fraction, the count and the first files; last.ckpt saved",
)
def test_pretraining_counts_decode_failures(planted, pretrain_index, tmp_path, capsys):
    import torch

    from s3prl_emoaware.cli.main import main

    from .cli_lines import assert_one_line

    root, paths, _ = planted
    n, header_bad, fraction = _between(root, pretrain_index)
    out = tmp_path / "pt"
    code = main(_pretrain_args(root, out, fraction))
    line = assert_one_line(code, capsys.readouterr().err, f"max_bad_fraction {fraction:g}", str(root))
    count = int(re.search(rf"(\d+) of {n} audio files are unusable", line).group(1))
    assert header_bad < count <= header_bad + len(DECODE_BAD), line
    assert any(str(paths[p]) in line for p in REFUSED), line
    assert torch.load(out / "last.ckpt", weights_only=True)["step"] in (4, 8)


@pytest.mark.slow
@pytest.mark.probe(
    area="audio",
    probe="the same under torchrun (2 gloo ranks), each rank decoding its own share of the files",
    behaviour="the ranks' skipped files are summed at the checkpoint (an all-reduce both reach): both stop at the "
    "same step, each with one line naming max_bad_fraction and the same count; the job ends, no rank waits",
)
def test_pretraining_decode_failures_under_torchrun(planted, pretrain_index, tmp_path):
    import subprocess

    from subprocess_env import PYTHON, REPO_ROOT, child_env

    root, _, _ = planted
    n, header_bad, fraction = _between(root, pretrain_index)
    argv = [PYTHON, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29791"]
    proc = subprocess.run(
        [*argv, "-m", "s3prl_emoaware.cli", *_pretrain_args(root, tmp_path / "ddp", fraction)],
        capture_output=True,
        text=True,
        env=child_env(),
        cwd=REPO_ROOT,
        timeout=300,
    )
    log = proc.stdout + proc.stderr
    lines = re.findall(r"s3prl-emoaware: error: [^\r\n]*", log)
    assert proc.returncode != 0 and len(lines) == 2, log[-3000:]
    counts = [int(re.search(rf"(\d+) of {n} audio files are unusable", line).group(1)) for line in lines]
    assert counts[0] == counts[1] and header_bad < counts[0] <= header_bad + len(DECODE_BAD), lines
    assert all(f"max_bad_fraction {fraction:g}" in line for line in lines), lines


# --- intensity extraction -------------------------------------------------------------------


@pytest.fixture(scope="module")
def extracted(planted, tmp_path_factory):
    from s3prl_emoaware.intensity.cache import IntensityCache
    from s3prl_emoaware.intensity.extract import extract_intensities

    root, paths, _ = planted
    out = tmp_path_factory.mktemp("intensity") / "cache"
    utts = [u for u in read_corpus(root) if u.path != paths[LONG].resolve()]  # the 10-minute clip: slow test
    handler, done = _capture()
    try:
        counts = extract_intensities(root, out, source="energy", utterances=utts, n_jobs=1, max_bad_fraction=0.5)
    finally:
        done()
    return IntensityCache(out), counts, handler.lines, utts


def _check_curve(cache, utt_id: str, path: Path) -> None:
    from s3prl_emoaware.intensity.alignment import FBANK_GRID

    curve = cache.get(utt_id)
    wav = read_audio(path)
    assert curve.shape == (FBANK_GRID.num_frames(len(wav)),) and np.isfinite(curve).all()
    assert curve.min() >= 0 and curve.max() <= 1


@pytest.mark.parametrize(
    "plant",
    _cases(
        "intensity extraction",
        REFUSED + FAST_WORKS,
        "curve cached, one value per fbank frame, in [0, 1]",
        "skipped, in the index's 'failed' map and the end list ('{fragment}'); the rest extracted",
    ),
)
def test_intensity_extraction(planted, extracted, plant):
    _, paths, _ = planted
    cache, counts, lines, utts = extracted
    path = paths[plant]
    utt_id = next(u.utt_id for u in utts if u.path == path.resolve())
    if plant in REFUSED:
        _one_line_naming(cache.failed[utt_id], path, PLANTS[plant][1])
        assert any("files skipped" in m and str(path) in m for m in lines)
        return
    _check_curve(cache, utt_id, path)
    assert counts["failed"] == len(REFUSED)


@pytest.mark.slow
@_probe("intensity extraction", LONG, "curve cached, one value per fbank frame (60,000 frames)")
def test_intensity_extraction_long(planted, tmp_path):
    from s3prl_emoaware.intensity.cache import IntensityCache
    from s3prl_emoaware.intensity.extract import extract_intensities

    root, paths, _ = planted
    u = next(u for u in read_corpus(root) if u.path == paths[LONG].resolve())
    extract_intensities(root, tmp_path / "c", source="energy", utterances=[u], n_jobs=1)
    _check_curve(IntensityCache(tmp_path / "c"), u.utt_id, paths[LONG])


@pytest.mark.probe(
    area="audio",
    probe="intensity extraction: more bad files than --max-bad-fraction",
    behaviour="TooManyBadFilesError one line at the end; the good curves are kept in the cache",
)
def test_intensity_threshold(planted, tmp_path):
    from s3prl_emoaware.intensity.cache import IntensityCache
    from s3prl_emoaware.intensity.extract import extract_intensities

    root, paths, _ = planted
    utts = [u for u in read_corpus(root) if u.path != paths[LONG].resolve()]
    with pytest.raises(TooManyBadFilesError, match="max_bad_fraction 0.02"):
        extract_intensities(root, tmp_path / "c", source="energy", utterances=utts, n_jobs=1, max_bad_fraction=0.02)
    assert len(IntensityCache(tmp_path / "c").items) == len(utts) - len(REFUSED)


# --- StrengthNet training data ---------------------------------------------------------------


@pytest.fixture(scope="module")
def strengthnet_loaded(planted):
    from s3prl_emoaware.intensity.train import _load

    root, _, _ = planted
    handler, done = _capture()
    try:
        loaded, failed = _load(read_corpus(root), f"{root} (StrengthNet training)", max_bad_fraction=0.5)
    finally:
        done()
    return loaded, failed, handler.lines


@pytest.mark.parametrize(
    "plant",
    _cases(
        "StrengthNet training data",
        PLANTS,
        "decoded at 16 kHz for training",
        "skipped and listed ('{fragment}'); training goes on",
    ),
)
def test_strengthnet_data(planted, strengthnet_loaded, plant):
    _, paths, _ = planted
    loaded, failed, _ = strengthnet_loaded
    path = paths[plant]
    got = {u.path: w for u, w in loaded}
    if PLANTS[plant][1]:
        reason = next(r for r in failed.values() if r.startswith(f"{path}:"))
        _one_line_naming(reason, path, PLANTS[plant][1])
        assert path.resolve() not in got
        return
    wav = got[path.resolve()]
    assert wav.ndim == 1 and np.isfinite(wav).all()


@pytest.mark.probe(
    area="audio",
    probe="StrengthNet training data: more bad files than training.max_bad_fraction",
    behaviour="TooManyBadFilesError one line before training starts",
)
def test_strengthnet_threshold(planted):
    from s3prl_emoaware.intensity.train import _load

    root, _, _ = planted
    with pytest.raises(TooManyBadFilesError, match="max_bad_fraction 0.02"):
        _load(read_corpus(root), str(root), max_bad_fraction=0.02)


# --- clustering / embeddings ----------------------------------------------------------------


@pytest.fixture(scope="module")
def embedded(planted, tmp_path_factory):
    from s3prl_emoaware.config import load_config, shipped_config
    from s3prl_emoaware.contrastive.embed import embed_corpus
    from s3prl_emoaware.pretraining.data import build_dataset
    from s3prl_emoaware.pretraining.tasks import build_task
    from s3prl_emoaware.pretraining.trainer import PretrainRecipe, Trainer

    root, _, _ = planted
    recipe = load_config(PretrainRecipe, shipped_config("upstream_configs", "ecapa_speaker_tiny"), [])
    task = build_task(recipe.kind, recipe.model, recipe.masking, recipe.frontend.feature_dim, recipe.objective)
    out = tmp_path_factory.mktemp("encoder")
    ckpt = Trainer(task, build_dataset(read_corpus(root), recipe.frontend, max_bad_fraction=0.5), recipe, out).save()
    return embed_corpus(root, ckpt, batch_size=8, num_workers=0, max_bad_fraction=0.5)


@pytest.mark.parametrize(
    "plant",
    _cases(
        "clustering embeddings",
        PLANTS,
        "embedded (finite row)",
        "skipped with its reason ('{fragment}')",
        too_short=("shorter_than_span",),
    ),
)
def test_embeddings(planted, embedded, plant):
    _, paths, _ = planted
    utts, emb, skipped = embedded
    path = paths[plant]
    rows = {u.path: i for i, u in enumerate(utts)}
    if PLANTS[plant][1] or plant == "shorter_than_span":  # embeddings need four windows
        reason = next(r for r in skipped.values() if r.startswith(f"{path}:"))
        _one_line_naming(reason, path, PLANTS[plant][1] or "too short")
        assert path.resolve() not in rows
        return
    assert np.isfinite(emb[rows[path.resolve()]]).all()


# --- plot-intensity -------------------------------------------------------------------------


def _plot(path: Path, out: Path, capsys):
    from s3prl_emoaware.cli.main import main

    status = main(["plot-intensity", str(path), "--out", str(out), "--source", "energy", "--ems"])
    return status, capsys.readouterr().err.strip()


@pytest.mark.parametrize(
    "plant",
    _cases(
        "plot-intensity --ems",
        REFUSED + FAST_WORKS,
        "exit 0, PNG written",
        "exit 2, one stderr line: '{fragment}'; no PNG",
    ),
)
def test_plot_intensity(planted, plant, tmp_path, capsys):
    _, paths, _ = planted
    out = tmp_path / "plot.png"
    status, err = _plot(paths[plant], out, capsys)
    if PLANTS[plant][1]:
        assert status == 2 and not out.exists()
        _one_line_naming(err.splitlines()[-1], paths[plant], PLANTS[plant][1])
        assert err.count("\n") == 0, err
        return
    assert status == 0 and out.stat().st_size > 0, err


@pytest.mark.slow
@_probe("plot-intensity --ems", LONG, "exit 0, PNG written")
def test_plot_intensity_long(planted, tmp_path, capsys):
    _, paths, _ = planted
    status, err = _plot(paths[LONG], tmp_path / "plot.png", capsys)
    assert status == 0 and (tmp_path / "plot.png").stat().st_size > 0, err


# --- our downstream experts' datasets ----------------------------------------------------------


@pytest.fixture(scope="module")
def ser_expert(planted, tmp_path_factory):
    from s3prl_emoaware.downstreams.ser.expert import DownstreamExpert

    root, _, _ = planted
    datarc = {
        "root": str(root),
        "layout": "iemocap",
        "classes": ["neu", "hap", "ang", "sad"],
        "seed": 0,
        "train_batch_size": 4,
        "eval_batch_size": 4,
        "max_bad_fraction": 0.5,
    }
    modelrc = {"projector_dim": 8, "UtteranceLevel": {"pooling": "MeanPooling"}}
    handler, done = _capture()
    try:
        expert = DownstreamExpert(16, {"datarc": datarc, "modelrc": modelrc}, str(tmp_path_factory.mktemp("ser")))
    finally:
        done()
    expert.probe_log = handler.lines
    return expert


@pytest.mark.parametrize(
    "plant",
    _cases(
        "SER downstream dataset (emotion_*)",
        [p for p in PLANTS if p not in NEW_NAMES],
        "in a split; the item decodes at 16 kHz",
        "left out of the splits from its header and listed ('{fragment}')",
        "in a split (its header is fine); reading the item raises AudioError, one line ('{fragment}')",
    ),
)
def test_ser_dataset(planted, ser_expert, plant):
    from s3prl_emoaware.downstreams.ser.expert import _Utterances

    _, paths, _ = planted
    path = paths[plant].resolve()
    where = {u.path: (split, i) for split, us in ser_expert.splits.items() for i, u in enumerate(us)}
    if plant in HEADER_BAD:
        assert path not in where
        return
    split, i = where.get(path, (None, None))
    if split is None:  # label_subset / speaker split may leave a file out: read it as the dataset would
        pytest.fail(f"{path} missing from every split")
    data = _Utterances(ser_expert.splits[split], ser_expert.classes)
    if plant in DECODE_BAD:
        with pytest.raises(AudioError) as err:
            data[i]
        _one_line_naming(str(err.value), path, PLANTS[plant][1])
        return
    wav, label, utt = data[i]
    assert wav.ndim == 1 and np.isfinite(wav).all() and 0 <= label < 4


PHONE_PLANTS = ("zero_bytes", "text", "shorter_than_window", "nan", "stereo", "rate_8000", "rate_44100")


@pytest.fixture(scope="module")
def phone_dataset(tiny_librispeech, tmp_path_factory):
    """The phoneme downstream's dataset over a LibriSpeech copy whose first FLAC files are planted."""
    from s3prl_emoaware.downstreams.phoneme.dataset import PhoneDataset
    from s3prl_emoaware.downstreams.phoneme.text import PhoneVocabulary, read_lexicon

    root = tmp_path_factory.mktemp("planted_libri") / "librispeech"
    shutil.copytree(tiny_librispeech, root)
    flacs = sorted((root / "train-clean-100").glob("*/*/*.flac"))
    paths = {}
    for kind, path in zip(PHONE_PLANTS, flacs):
        wav, _ = sf.read(str(path), dtype="float32")
        tmp = path.with_suffix(".tmp.wav")
        _write_plant(kind, tmp, wav)
        if kind in ("stereo",) or kind.startswith("rate_") or kind in ("shorter_than_window", "nan"):
            data, rate = sf.read(str(tmp), dtype="float32", always_2d=True)
            subtype = "FLOAT" if kind == "nan" else "PCM_16"
            fmt = "WAV" if kind == "nan" else "FLAC"  # FLAC holds no NaN: a float WAV under the .flac name
            sf.write(str(path), data, rate, subtype=subtype, format=fmt)
        else:
            shutil.copyfile(tmp, path)
        tmp.unlink()
        paths[kind] = path
    vocab = PhoneVocabulary.from_file(root / "phones.txt")
    handler, done = _capture()
    try:
        dataset = PhoneDataset(
            root, ["train-clean-100"], read_lexicon([root / "lexicon.txt"], vocab), vocab, max_bad_fraction=0.5
        )
    finally:
        done()
    return dataset, paths, handler.lines


@pytest.mark.parametrize(
    "plant",
    _cases(
        "phoneme downstream dataset",
        PHONE_PLANTS,
        "in the dataset; the item decodes at 16 kHz",
        "left out from its header and listed ('{fragment}')",
        "in the dataset (its header is fine); reading the item raises AudioError, one line ('{fragment}')",
    ),
)
def test_phoneme_dataset(phone_dataset, plant):
    dataset, paths, lines = phone_dataset
    path = paths[plant]
    index = {item[0]: i for i, item in enumerate(dataset.items)}
    if plant in HEADER_BAD:
        assert path not in index
        assert any("files skipped" in m and str(path) in m and PLANTS[plant][1] in m for m in lines), lines
        return
    if plant in DECODE_BAD:
        with pytest.raises(AudioError) as err:
            dataset[index[path]]
        _one_line_naming(str(err.value), path, PLANTS[plant][1])
        return
    wav, ids, _ = dataset[index[path]]
    assert wav.ndim == 1 and np.isfinite(wav).all() and len(ids) > 0


@pytest.mark.probe(
    area="audio",
    probe="`s3prl-emoaware intensity --max-bad-fraction 0.02` on the planted corpus",
    behaviour="exit 2, one stderr line naming the count and max_bad_fraction; good curves kept",
)
def test_intensity_cli_threshold(planted, tmp_path, capsys):
    from s3prl_emoaware.cli.main import main

    root, paths, _ = planted
    small = tmp_path / "iemocap"
    shutil.copytree(root, small, ignore=lambda d, names: [n for n in names if n == paths[LONG].name])
    status = main(
        [
            "intensity",
            "--corpus",
            str(small),
            "--out",
            str(tmp_path / "cache"),
            "--source",
            "energy",
            "--jobs",
            "1",
            "--max-bad-fraction",
            "0.02",
        ]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and "max_bad_fraction 0.02" in err[-1] and str(small) in err[-1], err[-3:]
    assert (tmp_path / "cache" / "index.json").is_file()


@pytest.mark.slow
@pytest.mark.probe(
    area="audio",
    probe="pre-training run (tiny Mockingjay) on the planted corpus",
    behaviour="trains on the rest, finite losses; at the end the files skipped while decoding "
    "(NaN, Inf) and those left out of the index are listed",
)
def test_pretraining_run_lists_skipped_at_end(planted, tmp_path):
    from s3prl_emoaware.config import load_config, shipped_config
    from s3prl_emoaware.pretraining.run import pretrain
    from s3prl_emoaware.pretraining.trainer import PretrainRecipe

    root, paths, _ = planted
    recipe = load_config(
        PretrainRecipe,
        shipped_config("upstream_configs", "ems_mockingjay_tiny"),
        [
            "masking.strategy=random",
            "training.total_steps=8",
            "training.batch_size=8",
            "training.num_workers=0",
            "training.max_bad_fraction=0.5",
        ],
    )
    handler, done = _capture()
    try:
        trainer, history = pretrain(recipe, root, tmp_path / "pt", None)
    finally:
        done()
    assert len(history) == 8 and all(np.isfinite(loss) for _, loss in history)
    end = [m for m in handler.lines if "end of training" in m]
    assert any(str(paths["nan"]) in m for m in end + [r for r in trainer.skipped.values()])
    assert any("left out of the index" in m and str(paths["zero_bytes"]) in m for m in end), end


@pytest.mark.parametrize(
    "site,suffix,expected",
    [
        pytest.param(
            site,
            suffix,
            expected,
            id=site.split()[0],
            marks=pytest.mark.probe(
                area="audio",
                probe=f"{site}: the planted corpus (other rates, stereo, truncated)",
                behaviour=f"one log line for the corpus: {', '.join(expected)} (counted per kind), one listing the skipped",
            ),
        )
        for site, suffix, expected in [
            ("intensity extraction", "(intensity extraction)", ("resampled", "downmixed", "truncated")),
            ("StrengthNet training data", "(StrengthNet training)", ("resampled", "downmixed", "truncated")),
            ("SER downstream dataset", "(SER)", ("resampled", "downmixed", "truncated")),
        ]
    ],
)
def test_corpus_line(planted, request, site, suffix, expected):
    root, _, _ = planted
    if site.startswith("intensity"):
        lines = request.getfixturevalue("extracted")[2]
    elif site.startswith("StrengthNet"):
        lines = request.getfixturevalue("strengthnet_loaded")[2]
    else:
        lines = request.getfixturevalue("ser_expert").probe_log
    mine = [m for m in lines if m.startswith(f"{root} {suffix}: ")]
    done = [m for m in mine if "files skipped" not in m]
    assert len(done) == 1 and all(word in done[0] for word in expected), mine
    assert sum("files skipped" in m for m in mine) == 1, mine


@pytest.mark.probe(
    area="audio",
    probe="a file read through a downstream dataset's audio memo, then rewritten in place; a bad file",
    behaviour="the changed file is read again (size/mtime stamp), an unchanged one comes from memory as a copy; "
    "a bad file is refused by read_audio in one line naming it",
)
def test_audio_memo_serves_unchanged_files_and_rereads_changed_ones(tmp_path):
    """A downstream dataset's memo of decoded audio: served from memory while the file is unchanged,
    re-read when it changes, bounded (least recently used out), a bad file refused as read_audio does."""
    import os

    from s3prl_emoaware.utils.audio import AudioMemo

    rng = np.random.default_rng(0)
    a, b = tmp_path / "a.wav", tmp_path / "b.wav"
    wav_a, wav_b = (rng.uniform(-0.5, 0.5, 8000).astype(np.float32) for _ in range(2))
    sf.write(a, wav_a, 16000, subtype="FLOAT")
    sf.write(b, wav_b, 16000, subtype="FLOAT")

    memo = AudioMemo(1.0, expected_rate=16000)
    first = memo(a)
    first[:] = 0  # a caller modifying what it got changes nothing held
    assert np.array_equal(memo(a), wav_a) and (memo.reads, memo.hits) == (1, 1)
    changed = wav_a[::-1].copy()
    sf.write(a, changed, 16000, subtype="FLOAT")
    os.utime(a, ns=(os.stat(a).st_atime_ns, os.stat(a).st_mtime_ns + 10**9))  # a new stamp even on coarse clocks
    assert np.array_equal(memo(a), changed) and memo.reads == 2

    small = AudioMemo(1.5 * wav_a.nbytes / 1e9, expected_rate=16000)  # room for one clip
    small(a), small(b), small(b), small(a)
    assert (small.reads, small.hits) == (3, 1)
    off = AudioMemo(0, expected_rate=16000)
    off(a), off(a)
    assert (off.reads, off.hits) == (2, 0)

    bad = tmp_path / "bad.wav"
    bad.write_text("not audio")
    with pytest.raises(AudioError, match="bad.wav"):
        memo(bad)
    with pytest.raises(ValueError, match="audio_memory_gb"):
        AudioMemo(-1)
