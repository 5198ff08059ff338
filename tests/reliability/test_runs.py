"""Output directories: one run at a time, and no resume from outputs another model, config or
input set made (issue 20)."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
from flax import nnx

from tokcomp_jax.data.scenes import scene_samples
from tokcomp_jax.eval.results import ResultsFile
from tokcomp_jax.explain.label_writer import FINGERPRINT_FILE, SHARDS_DIR, LabelSettings, write_labels
from tokcomp_jax.models import Qwen2VL, Qwen2VLConfig
from tokcomp_jax.models.layout import Buckets
from tokcomp_jax.runs import RunConflict, claim, exclusive, model_digest

HOLD = "import sys, time; from tokcomp_jax.runs import exclusive\nwith exclusive(sys.argv[1]):\n    print('held', flush=True); time.sleep(60)"


def test_a_second_run_into_a_held_directory_stops_at_once(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        started = time.monotonic()
        with pytest.raises(RunConflict, match=rf"{tmp_path} is in use by another run \(pid {holder.pid}\)"):
            with exclusive(tmp_path):
                pass
        assert time.monotonic() - started < 5  # refused, not waited for
    finally:
        holder.kill()
        holder.wait()
    with exclusive(tmp_path):  # a killed holder leaves no stale lock
        pass


def test_claim_records_then_checks_what_outputs_were_made_from(tmp_path):
    path = tmp_path / "run.fingerprint.json"
    made_from = {"model": "a1", "settings": {"keep": (0.5,)}}
    assert claim(path, made_from) is True  # nothing recorded: start
    assert claim(path, made_from) is False  # the same: resume
    with pytest.raises(RunConflict, match=r"holds outputs made with another model \(run\.fingerprint\.json\)"):
        claim(path, made_from | {"model": "b2"})
    assert claim(path, made_from | {"model": "b2"}, overwrite=True) is True
    assert claim(path, made_from | {"model": "b2"}) is False
    with pytest.raises(RunConflict, match=r"holds outputs without a record of what made them"):
        claim(tmp_path / "other.json", made_from, has_outputs=True)


def test_results_written_twice_count_once(tmp_path):
    results = ResultsFile(tmp_path / "r.jsonl")
    results.append([{"sample_id": "a", "reply": "yes"}, {"sample_id": "b", "reply": "no"}])
    results.append([{"sample_id": "a", "reply": "yes"}])  # e.g. a second process before the lock existed
    assert [r["sample_id"] for r in results.read()] == ["a", "b"]


SETTINGS = LabelSettings(Buckets(text=16, visual=64, queries=8), batch_size=2, shard_size=2, max_new_tokens=2)


def test_labels_refuse_to_resume_from_another_model_or_samples(tmp_path):
    model = Qwen2VL(Qwen2VLConfig.tiny(), rngs=nnx.Rngs(0))
    other = Qwen2VL(Qwen2VLConfig.tiny(), rngs=nnx.Rngs(1))
    assert model_digest(model) == model_digest(Qwen2VL(Qwen2VLConfig.tiny(), rngs=nnx.Rngs(0)))
    assert model_digest(model) != model_digest(other)
    samples = scene_samples(model.config, 4, [(56, 56)], seed=1)
    out = tmp_path / "labels"
    assert write_labels(model, samples, out, SETTINGS, stop_after_shards=1) is None
    with pytest.raises(RunConflict, match=r"holds outputs made with another model \(fingerprint\.json\)"):
        write_labels(other, samples, out, SETTINGS)
    with pytest.raises(RunConflict, match=r"another samples"):
        write_labels(model, scene_samples(model.config, 4, [(56, 56)], seed=2), out, SETTINGS)
    assert write_labels(other, samples, out, SETTINGS, overwrite=True) is not None  # started over, then finished
    assert len(list((out / SHARDS_DIR).glob("*.npz"))) == 2 and (out / FINGERPRINT_FILE).exists()
    with pytest.raises(ValueError, match=r"1 sample ids appear more than once .*\['scene-"):
        write_labels(model, [*samples, samples[0]], tmp_path / "twice", SETTINGS)
