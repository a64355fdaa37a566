"""Shared fixtures: tiny generated corpora, built once per test session (seconds with espeak-ng)."""

import os

import pytest

os.environ.setdefault("MPLBACKEND", "Agg")


def pytest_sessionstart(session):
    """In the installed-package pass, refuse to run against the checkout by accident."""
    from subprocess_env import REPO_ROOT, TEST_INSTALLED

    if TEST_INSTALLED:
        import s3prl_emoaware

        where = os.path.realpath(s3prl_emoaware.__file__)
        if where.startswith(str(REPO_ROOT) + os.sep + "s3prl_emoaware"):
            raise pytest.UsageError(
                f"S3PRL_EMOAWARE_TEST_INSTALLED=1 but s3prl_emoaware imports from the checkout: {where}"
            )


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
