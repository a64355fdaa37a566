"""Shared fixtures: tiny generated corpora, built once per test session (seconds with espeak-ng)."""

import os

import pytest

os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture(scope="session")
def corpora_root(tmp_path_factory):
    return tmp_path_factory.mktemp("corpora")


def _corpus(root, kind):
    from s3prl_emoaware.corpora.synth import synthesize_corpus

    path = root / kind
    if not path.exists():
        synthesize_corpus(kind, path, seed=0, size="tiny")
    return path


@pytest.fixture(scope="session")
def tiny_iemocap(corpora_root):
    return _corpus(corpora_root, "iemocap")


@pytest.fixture(scope="session")
def tiny_librispeech(corpora_root):
    return _corpus(corpora_root, "librispeech")


@pytest.fixture(scope="session")
def tiny_fsc(corpora_root):
    return _corpus(corpora_root, "fsc")


@pytest.fixture(scope="session")
def tiny_ravdess(corpora_root):
    return _corpus(corpora_root, "ravdess")
