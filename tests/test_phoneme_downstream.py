"""Phoneme recognition downstream: vocabulary/lexicon, decoding, PER, and the stock runner end to end."""

import pytest
import torch
from subprocess_env import stock_evaluate_test, stock_train

from s3prl_emoaware.downstreams.phoneme.dataset import BucketSampler, PhoneDataset
from s3prl_emoaware.downstreams.phoneme.text import PhoneVocabulary, greedy_ctc_decode, phone_error_rate, read_lexicon
from s3prl_emoaware.utils.errors import UserFacingError


def test_per_counts_edits_over_reference_length():
    assert phone_error_rate([["a", "b", "c"]], [["a", "b", "c"]]) == 0
    assert phone_error_rate([["a", "x"], []], [["a", "b", "c"], ["d"]]) == pytest.approx(3 / 4)
    assert phone_error_rate([["a", "a", "a", "a"]], [["a"]]) == pytest.approx(3.0)  # insertions: above 1


def test_greedy_decode_merges_repeats_and_drops_blanks():
    # frames: 1 1 0 1 2 2 0 | padding frames ignored
    ids = torch.tensor([[1, 1, 0, 1, 2, 2, 0, 3, 3]])
    log_probs = torch.nn.functional.one_hot(ids, 4).float().log()
    assert greedy_ctc_decode(log_probs, torch.tensor([7])) == [[1, 1, 2]]


def test_lexicon_errors_name_file_and_key(tmp_path):
    vocab = PhoneVocabulary(["a", "b"])
    assert vocab.encode(["b", "a"]) == [2, 1] and vocab.decode([2]) == ["b"]
    lex = tmp_path / "lex.txt"
    lex.write_text("HELLO a b\nHELLO b\nbye b\n")
    assert read_lexicon([lex], vocab) == {"HELLO": ["a", "b"], "BYE": ["b"]}
    lex.write_text("HELLO a zz\n")
    with pytest.raises(UserFacingError, match=r"lex.txt:1: phone\(s\) zz .*vocab_file"):
        read_lexicon([lex], vocab)
    with pytest.raises(UserFacingError, match="downstream_expert.corpus.lexicon"):
        read_lexicon([tmp_path / "missing.txt"], vocab)


def test_dataset_reads_generated_librispeech(tiny_librispeech):
    vocab = PhoneVocabulary.from_file(tiny_librispeech / "phones.txt")
    lexicon = read_lexicon([tiny_librispeech / "lexicon.txt"], vocab)
    ds = PhoneDataset(tiny_librispeech, ["train-clean-100"], lexicon, vocab)
    wav, ids, utt = ds[0]
    assert wav.ndim == 1 and wav.dtype.name == "float32" and len(ids) > 3 and "-" in utt
    lengths = [item[3] for item in ds.items]
    assert lengths == sorted(lengths, reverse=True)
    batches = list(BucketSampler(len(ds), 3, shuffle=True, epoch=1))
    assert sorted(i for b in batches for i in b) == list(range(len(ds)))
    assert batches == list(BucketSampler(len(ds), 3, shuffle=True, epoch=1))  # seeded


def test_mostly_missing_words_are_one_error_naming_them(tiny_librispeech):
    vocab = PhoneVocabulary.from_file(tiny_librispeech / "phones.txt")
    with pytest.raises(
        UserFacingError,
        match=r"\d+ of \d+ utterances of dev-clean have words not in the lexicon "
        r"\(e\.g\. [A-Z]+.*downstream_expert.corpus.lexicon",
    ):
        PhoneDataset(tiny_librispeech, ["dev-clean"], {}, vocab)


def test_head_init_zero_starts_every_seed_from_uniform_posteriors(tiny_librispeech, tmp_path):
    from s3prl_emoaware.downstreams.phoneme.expert import DownstreamExpert

    def expert(seed, **model):
        torch.manual_seed(seed)
        config = {
            "corpus": {"path": str(tiny_librispeech), "lexicon": [str(tiny_librispeech / "lexicon.txt")]},
            "text": {"vocab_file": str(tiny_librispeech / "phones.txt")},
            "model": {"project_dim": 8, **model},
        }
        return DownstreamExpert(upstream_dim=5, upstream_rate=160, downstream_expert=config, expdir=str(tmp_path))

    x = torch.randn(2, 7, 8)
    default = [expert(seed).model(x)[0] for seed in (0, 1)]
    assert not torch.allclose(default[0], default[1])  # the default head: each seed its own function
    zero = [expert(seed, head_init="zero") for seed in (0, 1)]
    for e in zero:
        logits = e.model(e.projector(torch.randn(2, 7, 5)))[0]
        assert torch.equal(logits, torch.zeros_like(logits))
    assert not torch.equal(zero[0].projector.weight, zero[1].projector.weight)  # only the head is fixed
    with pytest.raises(ValueError, match="head_init: 'default' or 'zero', got 'ones'"):
        expert(0, head_init="ones")


@pytest.mark.slow
def test_stock_runner_trains_and_evaluates_phoneme_recognition(tiny_librispeech, tmp_path):
    lib = tiny_librispeech
    override = (
        "config.runner.total_steps=6,,config.runner.eval_step=3,,config.runner.save_step=3,,"
        "config.runner.log_step=3,,config.runner.gradient_accumulate_steps=1,,"
        f"config.downstream_expert.corpus.path='{lib}',,config.downstream_expert.corpus.lexicon=['{lib / 'lexicon.txt'}'],,"
        f"config.downstream_expert.text.vocab_file='{lib / 'phones.txt'}',,"
        "config.downstream_expert.corpus.num_workers=0,,config.downstream_expert.corpus.batch_size=4"
    )
    expdir = tmp_path / "pr"
    stock_train("emoaware_fbank", "phoneme_recognition", override, expdir, cwd=tmp_path)
    assert (expdir / "dev-hyp.ark").is_file()
    ev = stock_evaluate_test(expdir, cwd=tmp_path)
    refs = (expdir / "test-ref.ark").read_text().splitlines()
    n_test = sum(len(t.read_text().splitlines()) for t in (lib / "test-clean").glob("*/*/*.trans.txt"))
    assert len(refs) == n_test
    assert "test per:" in ev.stdout
