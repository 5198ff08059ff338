"""End-to-end parity with transformers' Qwen2-VL (float32, highest matmul precision).

Tolerance 1e-4 max abs on logits (|logits| ~ 1) and layer-1 attention: float32 with a
different summation order gives ~1e-6; anything structural (a wrong position id, a mask
leak, a transposed weight) moves values by > 1e-2.
"""

from __future__ import annotations

import numpy as np
import pytest

from conversion.verify import PARITY_CASES, flax_forward, max_diffs, random_batch

CASES = PARITY_CASES


@pytest.mark.parametrize("case", CASES)
def test_logits_and_first_layer_attention_match_transformers(tiny_qwen2vl, case):
    _, torch_model, model = tiny_qwen2vl
    diffs = max_diffs(model, torch_model, random_batch(model.config, CASES[case], seed=1))
    assert diffs["logits_max_abs"] > 0.1  # the comparison is not between near-zero tensors
    assert diffs["logits_max_abs_diff"] < 1e-4, diffs
    assert diffs["attn1_max_abs_diff"] < 1e-4, diffs


def test_padded_row_equals_the_same_row_alone(tiny_qwen2vl):
    """Right padding changes nothing for the real tokens of the shorter row."""
    _, _, model = tiny_qwen2vl
    both = random_batch(model.config, CASES["padded_batch_two_sizes"], seed=3)
    length = int(both["attention_mask"][1].sum())
    logits_both, _ = flax_forward(model, both)
    row = {
        "input_ids": both["input_ids"][1:, :length],
        "attention_mask": both["attention_mask"][1:, :length],
        "pixel_values": both["pixel_values"][int(both["image_grid_thw"][0].prod()) :],
        "image_grid_thw": both["image_grid_thw"][1:],
    }
    logits_alone, _ = flax_forward(model, row)
    np.testing.assert_allclose(logits_both[1, :length], logits_alone[0], atol=1e-5)
