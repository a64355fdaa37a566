"""scripts/cuda_check.py: its comparisons flag planted differences (the GPU run itself needs a GPU)."""

import importlib.util
import math
from pathlib import Path

import torch

_PATH = Path(__file__).resolve().parents[1] / "scripts" / "cuda_check.py"
_spec = importlib.util.spec_from_file_location("cuda_check", _PATH)
cc = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(cc)


def test_compare_states_flags_a_planted_difference_per_state_scale():
    g = torch.Generator().manual_seed(0)
    ref = [torch.randn(2, 5, 3, generator=g), 100 * torch.randn(2, 5, 3, generator=g)]
    same = cc.compare_states(ref, [t.clone() for t in ref])
    assert same["ok"] and same["worst_rel"] == 0.0 and same["n_states"] == 2
    # 0.05 is small against the second state's scale (~100) but not against the first's (~1)
    planted = [ref[0].clone(), ref[1].clone()]
    planted[1][1, 2, 0] += 0.05
    assert cc.compare_states(ref, planted)["ok"]
    planted[0][0, 4, 2] += 0.05
    result = cc.compare_states(ref, planted)
    assert not result["ok"] and result["worst_rel"] > cc.REL_TOL
    assert math.isclose(result["worst_abs"], 0.05, rel_tol=1e-3)


def test_compare_states_flags_shape_count_and_non_finite_values():
    ref = [torch.ones(1, 4, 2)]
    assert not cc.compare_states(ref, [torch.ones(1, 3, 2)])["ok"]
    assert not cc.compare_states(ref, ref + ref)["ok"]
    bad = torch.ones(1, 4, 2)
    bad[0, 0, 0] = float("nan")
    assert not cc.compare_states(ref, [bad])["ok"]


def test_batch_invariance_sees_real_frame_changes_and_non_zero_padding():
    alone = [[torch.ones(1, 3, 2)], [2 * torch.ones(1, 5, 2)]]
    batched = [torch.zeros(2, 5, 2)]
    batched[0][0, :3] = 1
    batched[0][1] = 2
    assert cc.batch_invariance(alone, batched, [3, 5]) == {"rel_real_frames": 0.0, "max_abs_padding": 0.0}
    batched[0][0, 4] = 0.25  # padding of the short utterance not zero
    assert cc.batch_invariance(alone, batched, [3, 5])["max_abs_padding"] == 0.25
    batched[0][1, 0, 1] = 2.5  # a real frame changed by its batch
    assert cc.batch_invariance(alone, batched, [3, 5])["rel_real_frames"] == 0.25


def test_loss_and_weight_differences():
    assert cc.loss_difference([1.0, 2.0], [1.0, 2.0]) == {"n": 2, "first_rel": 0.0, "max_rel": 0.0, "exact": True}
    d = cc.loss_difference([1.0, 2.0], [1.0, 2.2])
    assert not d["exact"] and math.isclose(d["max_rel"], 0.1) and d["first_rel"] == 0.0
    assert cc.loss_difference([1.0], [1.0, 2.0])["max_rel"] == math.inf
    assert cc.loss_difference([1.0], [float("nan")])["max_rel"] == math.inf
    a = {"w": torch.zeros(3), "step": torch.tensor(4)}
    assert cc.weights_difference(a, {"w": torch.tensor([0.0, 0.5, 0.0]), "step": torch.tensor(9)}) == 0.5
    assert cc.weights_difference(a, {"w": torch.zeros(3)}) == math.inf
