"""A finished miniature run read back with the config it was made with (miniature/finished.py)."""

from __future__ import annotations

import json

import pytest

from configs.miniature import get_config
from tokcomp_jax.miniature.finished import read_finished_run, read_summary, run_config


def _write_run(run, config, **extra) -> None:
    run.mkdir(exist_ok=True)
    (run / "retention.json").write_text(json.dumps({"config": config.to_dict(), **extra}))


def test_the_config_is_the_runs_own_with_its_seed_and_overrides(tmp_path):
    config = get_config("full")
    config.seed, config.mapper.num_steps, config.mllm.pretrained = 1, 1000, ""
    _write_run(tmp_path, config)
    again = run_config(read_summary(tmp_path))
    assert (again.seed, again.mapper.num_steps, again.data.config) == (1, 1000, "full")
    assert again.mapper_variants.mapper_v2.labels == config.mapper_variants.mapper_v2.labels


def test_what_is_not_a_finished_run_is_refused_by_name(tmp_path):
    with pytest.raises(SystemExit, match="holds no retention.json: not a finished miniature run"):
        read_finished_run(tmp_path)
    (tmp_path / "retention.json").write_text('{"results": ')
    with pytest.raises(SystemExit, match="retention.json is not JSON"):
        read_finished_run(tmp_path)
    (tmp_path / "retention.json").write_text('{"results": {}}')
    with pytest.raises(SystemExit, match="retention.json records no config"):
        read_finished_run(tmp_path)
    _write_run(tmp_path, get_config("test"))
    with pytest.raises(SystemExit, match="has no HAWK head weights"):
        read_finished_run(tmp_path)
    config = get_config("test")
    config.mllm.pretrained = str(tmp_path / "moved")
    _write_run(tmp_path, config, hawk_head_weights={"weights": [0.5, 0.5]})
    with pytest.raises(SystemExit, match=f"the MLLM run {tmp_path} was made with, {tmp_path / 'moved'}, is not there"):
        read_finished_run(tmp_path)
