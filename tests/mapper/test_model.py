"""Mapper shapes, masking, neighbour tables, save/load and bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
from flax import nnx

from tokcomp_jax.data.synthetic_labels import synthetic_split
from tokcomp_jax.mapper.checkpoint import load_mapper, mapper_scores, save_mapper
from tokcomp_jax.mapper.inputs import make_batch, neighbour_table
from tokcomp_jax.mapper.model import Mapper, MapperConfig, log_probabilities

LAYOUTS = [("sequence", "mean"), ("sequence", "heads"), ("grid", "mean"), ("grid", "heads")]


def _batch(examples, config: MapperConfig, bucket: int, batch_size: int | None = None):
    return make_batch(
        [e["features"] for e in examples],
        [e["token_grid_thw"] for e in examples],
        layout=config.layout,
        kernel_size=config.kernel_size,
        bucket=bucket,
        batch_size=batch_size,
    )


def test_neighbour_table_grid_stays_inside_each_image():
    grids = np.array([[1, 2, 3], [2, 2, 2]])  # one 2x3 image, then a 2-frame 2x2 video
    table = neighbour_table("grid", grids, 3, bucket=16)
    assert table.shape == (16, 9)
    assert (table[14:] == -1).all()  # padding has no neighbours
    np.testing.assert_array_equal(table[0], [-1, -1, -1, -1, 0, 1, -1, 3, 4])  # top-left of the 2x3 image
    np.testing.assert_array_equal(table[4], [0, 1, 2, 3, 4, 5, -1, -1, -1])  # bottom-middle
    np.testing.assert_array_equal(table[10], [-1, -1, -1, -1, 10, 11, -1, 12, 13])  # video frame 2 starts at 10
    assert set(table[6:10].ravel()) - {-1} <= set(range(6, 10))  # frame 1 never reads frame 2


def test_neighbour_table_sequence_stops_at_the_last_real_token():
    table = neighbour_table("sequence", np.array([[1, 2, 2]]), 5, bucket=6)
    np.testing.assert_array_equal(table[0], [-1, -1, 0, 1, 2])
    np.testing.assert_array_equal(table[3], [1, 2, 3, -1, -1])
    assert (table[4:] == -1).all()


@pytest.mark.parametrize(("layout", "input_channels"), LAYOUTS)
def test_padding_never_changes_a_real_tokens_score(layout, input_channels):
    examples = synthetic_split(0, 3, (3, 7))
    config = MapperConfig(layout=layout, input_channels=input_channels, num_heads=4, channels=(8, 16))
    mapper = Mapper(config, rngs=nnx.Rngs(0))
    alone = [np.asarray(mapper(_batch([e], config, e["relevance"].size)))[0] for e in examples]
    padded = np.asarray(mapper(_batch(examples, config, bucket=64, batch_size=5)))
    for row, (example, expected) in enumerate(zip(examples, alone, strict=True)):
        count = example["relevance"].size
        np.testing.assert_allclose(padded[row, :count], expected, rtol=1e-5, atol=1e-5)
        assert (padded[row, count:] == np.finfo(np.float32).min).all()


def test_log_probabilities_sum_to_one_over_real_tokens():
    examples = synthetic_split(1, 2, (3, 5))
    config = MapperConfig(num_heads=4, channels=(8,))
    batch = _batch(examples, config, bucket=32)
    log_probs = np.asarray(log_probabilities(Mapper(config, rngs=nnx.Rngs(0))(batch), batch.mask))
    np.testing.assert_allclose(np.where(batch.mask, np.exp(log_probs), 0).sum(-1), 1.0, rtol=1e-5)
    assert (log_probs[~batch.mask] == 0).all()


def test_scale_of_the_features_does_not_matter():
    """Attention per token shrinks with more tokens; the mapper normalises it away."""
    example = synthetic_split(2, 1, (4, 4))[0]
    config = MapperConfig(num_heads=4, channels=(8, 16))
    mapper = Mapper(config, rngs=nnx.Rngs(0))
    scaled = dict(example, features=example["features"] * 0.01)
    np.testing.assert_allclose(
        np.asarray(mapper(_batch([example], config, 16))), np.asarray(mapper(_batch([scaled], config, 16))), rtol=1e-4
    )


def test_save_and_load_round_trip(tmp_path):
    config = MapperConfig(layout="grid", input_channels="heads", num_heads=4, channels=(8, 16), family="qwen2_vl")
    mapper = Mapper(config, rngs=nnx.Rngs(3))
    loaded = load_mapper(save_mapper(tmp_path / "mapper", mapper))
    assert loaded.config == config
    batch = _batch(synthetic_split(3, 2, (3, 6)), config, bucket=40)
    scores = np.asarray(mapper_scores(loaded, batch))
    np.testing.assert_array_equal(scores, np.asarray(mapper_scores(mapper, batch)))
    assert np.isneginf(scores[~batch.mask]).all()


def test_load_rejects_parameters_of_another_shape(tmp_path):
    save_mapper(tmp_path / "mapper", Mapper(MapperConfig(channels=(8, 16)), rngs=nnx.Rngs(0)))
    (tmp_path / "mapper" / "mapper.json").write_text(json.dumps(MapperConfig(channels=(8, 32)).to_dict()))
    with pytest.raises(ValueError, match="does not match mapper.json"):
        load_mapper(tmp_path / "mapper")


def test_bad_input_is_rejected_with_a_clear_error():
    config = MapperConfig(num_heads=4, channels=(8,))
    mapper = Mapper(config, rngs=nnx.Rngs(0))
    example = synthetic_split(4, 1, (3, 3))[0]
    with pytest.raises(ValueError, match="no visual tokens"):
        make_batch([np.zeros((4, 0))], [np.zeros((0, 3), int)], layout="sequence", kernel_size=3, bucket=8)
    with pytest.raises(ValueError, match="do not hold"):
        make_batch([example["features"]], [np.array([[1, 3, 4]])], layout="sequence", kernel_size=3, bucket=16)
    with pytest.raises(ValueError, match="do not fit the mapper bucket"):
        _batch([example], config, bucket=4)
    with pytest.raises(ValueError, match="trained on 4"):
        mapper(_batch([dict(example, features=example["features"][:2])], config, bucket=16))
    with pytest.raises(ValueError, match="taps"):
        mapper(_batch([example], MapperConfig(layout="grid", num_heads=4), bucket=16))
    with pytest.raises(ValueError, match="layout"):
        MapperConfig(layout="3d")
    with pytest.raises(ValueError, match="odd"):
        MapperConfig(kernel_size=4)
