"""`scripts/evaluate.py --distributed` for real: 2 and 3 JAX processes on this machine (gloo
collectives, 2 CPU devices each), the same command on each, against one process: the same replies
for every sample, none lost or doubled, and host 0's report over every host's files; a host killed
mid-run and all rerun; and `--mesh global`, one mesh over 2 processes x 4 devices."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from flax import nnx
from PIL import Image

from tokcomp_jax.eval.results import ResultsFile
from tokcomp_jax.miniature.samples import miniature_config
from tokcomp_jax.models import Qwen2VL
from tokcomp_jax.models.checkpoint import save
from tokcomp_jax.models.families import FAMILIES

REPO = Path(__file__).resolve().parents[2]
SAMPLES = 13  # 13 = 7 + 6 over two hosts, 5 + 4 + 4 over three


@pytest.fixture(scope="module")
def command(tmp_path_factory):
    root = tmp_path_factory.mktemp("distributed")
    config = miniature_config(width=32, layers=1, heads=2, kv_heads=1, mlp=64, vision_width=16, vision_depth=1,
                              vision_heads=2)  # fmt: skip
    model = Qwen2VL(config, rngs=nnx.Rngs(0))
    save(root / "model", FAMILIES["qwen2_vl"], config, "float32", nnx.to_pure_dict(nnx.state(model, nnx.Param)))
    (root / "data" / "img").mkdir(parents=True)
    rng = np.random.default_rng(0)
    lines = []
    for index in range(SAMPLES):
        Image.fromarray(rng.integers(0, 256, (56, 84, 3), dtype=np.uint8)).save(root / "data" / "img" / f"{index}.png")
        lines.append(json.dumps({"id": f"q{index}", "question": "what colour is the square ?", "answer": "red",
                                 "image": f"img/{index}.png"}))  # fmt: skip
    for split in ("test", "test_2x"):
        (root / "data" / f"{split}.jsonl").write_text("\n".join(lines) + "\n")
    return [sys.executable, "scripts/evaluate.py", "--config=configs/eval/miniature.py", "--config.batch_size=2",
            f"--data_dir={root / 'data'}", f"--model={root / 'model'}", "--scorer=attention", "--keep=0.25"]  # fmt: skip


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_processes(command: list[str], out: Path, count: int, devices: int = 2) -> list[subprocess.Popen]:
    """`count` processes of one distributed run on localhost, `devices` CPU devices each."""
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "JAX_CPU_COLLECTIVES_IMPLEMENTATION": "gloo",
           "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}"}  # fmt: skip
    port = free_port()
    return [
        subprocess.Popen(
            [
                *command,
                f"--out={out}",
                "--distributed",
                f"--coordinator=127.0.0.1:{port}",
                f"--num_processes={count}",
                f"--process_id={index}",
            ],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for index in range(count)
    ]


def run_processes(command: list[str], out: Path, count: int, devices: int = 2) -> list[str]:
    """Run them to the end; their outputs."""
    outputs = []
    for process in start_processes(command, out, count, devices):
        output, err = process.communicate(timeout=600)
        assert process.returncode == 0, err[-3000:]
        outputs.append(output)
    return outputs


def replies(out: Path, hosts: int) -> dict[str, list]:
    """Per benchmark and run: (sample id, reply) of every host's file, in id order; doubles kept."""
    found = {}
    for split in ("test", "test_2x"):
        for run in ("unpruned", "attention@0.25"):
            records = [r for h in range(hosts) for r in ResultsFile(out / split / f"{run}.host{h}.jsonl").read()]
            found[f"{split}/{run}"] = sorted((r["sample_id"], r["reply"]) for r in records)
    return found


@pytest.mark.slow
@pytest.mark.parametrize("count", [2, 3])
def test_distributed_hosts_equal_one_process(command, tmp_path, count):
    subprocess.run([*command, f"--out={tmp_path / 'one'}"], cwd=REPO, check=True, capture_output=True, timeout=600)
    run_processes(command, tmp_path / "many", count)
    one, many = replies(tmp_path / "one", 1), replies(tmp_path / "many", count)
    assert many == one and all(len(pairs) == SAMPLES for pairs in many.values())
    for host in range(count):  # every n-th sample, none on two hosts
        ids = [r["sample_id"] for r in ResultsFile(tmp_path / "many" / "test" / f"unpruned.host{host}.jsonl").read()]
        assert ids and len(ids) == len(range(host, SAMPLES, count))
    rows = {out: json.loads((tmp_path / out / "results.json").read_text())["rows"] for out in ("one", "many")}
    assert [(r["run"], r["samples"], r["score"]) for r in rows["many"]] == [
        (r["run"], r["samples"], r["score"]) for r in rows["one"]
    ]


@pytest.mark.slow
def test_a_killed_host_resumes_with_all_hosts_rerun(command, tmp_path):
    """Host 1 is killed after its first batch (the others are then stopped, as a pod job is when one
    host dies); the same command run again on all hosts finishes without a sample lost or doubled."""
    subprocess.run([*command, f"--out={tmp_path / 'one'}"], cwd=REPO, check=True, capture_output=True, timeout=600)
    processes = start_processes(command, tmp_path / "many", 2)
    first = tmp_path / "many" / "test" / "unpruned.host1.jsonl"
    deadline = time.monotonic() + 300
    while not (first.exists() and first.read_text().count("\n")) and time.monotonic() < deadline:
        time.sleep(0.05)
    for process in processes:
        process.kill()
        process.wait()
    written = first.read_text()
    killed = replies(tmp_path / "many", 2)
    assert 0 < sum(map(len, killed.values())) < 4 * SAMPLES, "the kill came after the hosts' runs ended"
    run_processes(command, tmp_path / "many", 2)
    assert first.read_text().startswith(written)  # resumed after the killed run's batches, not started over
    one, many = replies(tmp_path / "one", 1), replies(tmp_path / "many", 2)
    assert many == one and all(len(pairs) == SAMPLES for pairs in many.values())


@pytest.mark.slow
def test_one_global_mesh_over_two_processes_equals_one_process(command, tmp_path):
    """2 processes x 4 devices, one (data 4 x model 2) mesh: every host runs every batch, host 0
    keeps the one results file; the replies equal one process's, sample by sample."""
    command = [*command, "--config.batch_size=4", "--mesh=global", "--mesh_model=2"]
    subprocess.run([*command, f"--out={tmp_path / 'one'}"], cwd=REPO, check=True, capture_output=True, timeout=600)
    outputs = run_processes(command, tmp_path / "many", 2, devices=4)
    assert all("mesh: data 4 x model 2 over 8 devices of 2 host(s)" in output for output in outputs), outputs
    one, many = replies(tmp_path / "one", 1), replies(tmp_path / "many", 1)
    assert many == one and all(len(pairs) == SAMPLES for pairs in many.values())
    assert not list((tmp_path / "many").glob("*/*.host1.*")), "host 1 wrote results of its own"
    rows = {out: json.loads((tmp_path / out / "results.json").read_text())["rows"] for out in ("one", "many")}
    assert [(r["run"], r["samples"], r["score"]) for r in rows["many"]] == [
        (r["run"], r["samples"], r["score"]) for r in rows["one"]
    ]
