"""tokcomp_jax inside lmms-eval (tokcomp_lmms), with a tiny Qwen2-VL checkpoint and local tasks (no
hub): tests/lmms/tasks holds a yes/no task (generate_until, lmms-eval's exact_match) and a
multiple-choice task (one loglikelihood request per option, lmms-eval's acc) over records written here.

- The yes/no task's score and replies equal scripts/evaluate.py's on the same records, unpruned and
  pruned. A random tiny model never answers yes or no, so half the records take its own unpruned
  reply as their answer: the unpruned score is 50 on both sides, and a wrong reply could not hide.
- The multiple-choice task's per-option values equal the project's own log-probabilities of each
  option after the prompt (tokcomp_jax.explain.relevance.answer_log_probs), and its accuracy their argmax.
- `lmms-eval --model tokcomp_jax` finds the model by its entry point and prints lmms-eval's table.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conversion.tiny import save_tiny_checkpoint

# lmms-eval lives in its own venv (make test-lmms). In the main venv this module is skipped; under
# make test-lmms (TOKCOMP_REQUIRE_LMMS=1) a missing lmms-eval fails instead.
if os.environ.get("TOKCOMP_REQUIRE_LMMS"):
    import lmms_eval  # noqa: F401
else:
    pytest.importorskip("lmms_eval", reason="lmms-eval is installed in its own venv: make test-lmms")

REPO = Path(__file__).resolve().parents[2]
BUCKETS = "text_buckets=64-128-256,visual_buckets=64-256-1024"  # configs/eval/jsonl.py's, so batches match
QUESTION = "is the square red ?"


FAMILIES = ["qwen2_vl", "qwen2_5_vl", "qwen3_vl", "llava_onevision", "vila"]


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    """A directory for the module, six images of three sizes; lmms-eval's caches under it."""
    root = tmp_path_factory.mktemp("lmms")
    os.environ.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", HF_HOME=str(root / "hf_home"))
    rng = np.random.default_rng(0)
    for i in range(6):
        size = [(56, 84), (84, 84), (70, 112)][i % 3]
        Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(root / f"img{i}.png")
    return root


def family_setup(root: Path, family: str = "qwen2_vl") -> tuple[Path, Path, list[Path]]:
    """(the family's tiny HF checkpoint, its own copy of tests/lmms/tasks, the image paths), made once."""
    model, tasks = root / family / "model", root / family / "tasks"
    if not model.exists():
        save_tiny_checkpoint(family, model)
        shutil.copytree(Path(__file__).with_name("tasks"), tasks)
    return model, tasks, [root / f"img{i}.png" for i in range(6)]


def write_records(path: Path, images: list[Path], answers: list[str], **extra) -> None:
    """One line per image: the generic jsonl format (scripts/evaluate.py) and the task's fields at once."""
    lines = [
        json.dumps({"id": f"q{i}", "question": QUESTION, "answer": answer, "images": [str(image)], **extra})
        for i, (image, answer) in enumerate(zip(images, answers, strict=True))
    ]
    path.write_text("\n".join(lines) + "\n")


def evaluate_py(model: Path, data: Path, out: Path, *pruning: str) -> dict:
    """scripts/evaluate.py on the records at `data`: {run: (score, records by sample id)}."""
    command = [sys.executable, "scripts/evaluate.py", "--config", f"configs/eval/jsonl.py:{data.name}",
               "--data_dir", str(data.parent), "--model", str(model), "--out", str(out), *pruning]  # fmt: skip
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    runs = {}
    for row in json.loads((out / "results.json").read_text())["rows"]:
        lines = (out / row["benchmark"] / f"{row['run']}.host0.jsonl").read_text().splitlines()
        runs[row["run"]] = (row["score"], {r["sample_id"]: r for r in map(json.loads, lines)})
    return runs


def lmms_run(model: Path, tasks: Path, task: str, **model_args) -> dict:
    """lmms-eval's simple_evaluate with the tokcomp_jax model by name (its entry point), batch 2."""
    from lmms_eval.evaluator import simple_evaluate
    from lmms_eval.tasks import TaskManager

    args = ",".join([f"pretrained={model}", BUCKETS, *(f"{k}={v}" for k, v in model_args.items())])
    return simple_evaluate(model="tokcomp_jax", model_args=args, tasks=[task], batch_size=2, log_samples=True,
                           task_manager=TaskManager(include_path=str(tasks)))  # fmt: skip


@pytest.mark.parametrize("family", FAMILIES)
def test_yes_no_scores_and_replies_equal_evaluate_py_unpruned_and_pruned(root, tmp_path, family):
    model, tasks, images = family_setup(root, family)
    data = tasks / "yesno.jsonl"
    write_records(data, images, ["yes", "no"] * 3)
    first = evaluate_py(model, data, tmp_path / "first", "--scorer", "attention", "--keep", "0.5")["unpruned"][1]
    replies = [first[f"q{i}"]["reply"] for i in range(6)]
    # half the answers are its own replies, the other half a yes or a no it did not give
    answers = [
        reply if i % 2 == 0 else "yes" if re.sub(r"\W", "", reply.lower()) == "no" else "no"
        for i, reply in enumerate(replies)
    ]
    write_records(data, images, answers)
    ours = evaluate_py(model, data, tmp_path / "ours", "--scorer", "attention", "--keep", "0.5")
    assert ours["unpruned"][0] == 50.0
    for run, model_args in {"unpruned": {}, "attention@0.5": {"scorer": "attention", "keep": 0.5}}.items():
        results = lmms_run(model, tasks, "tokcomp_yesno", **model_args)
        score, records = ours[run]
        assert 100 * results["results"]["tokcomp_yesno"]["exact_match,none"] == pytest.approx(score), run
        for sample in results["samples"]["tokcomp_yesno"]:
            record = records[f"q{sample['doc_id']}"]
            assert sample["resps"][0][0] == record["reply"], run
            counts = sample["token_counts"][0]
            assert counts["prefill_tokens"] == record["prefill_tokens"], run
            assert counts.get("visual_kept") == record.get("visual_kept") and counts["flops_pct"] == record["flops_pct"]
    assert records["q0"]["visual_kept"] < records["q0"]["visual_tokens"]  # the pruned run kept fewer


def own_log_likelihoods(model_dir: Path, images: list[Path], options: list[str]) -> np.ndarray:
    """[samples, options]: log p(option | prompt) by the project's own forward, one row at a time."""
    import tokcomp_jax
    from tokcomp_jax.eval.codecs import ChatCodec
    from tokcomp_jax.eval.samples import Prompt
    from tokcomp_jax.explain.relevance import answer_log_probs, append_answers
    from tokcomp_jax.models.families import family_of
    from tokcomp_jax.prune import Buckets, prepare_pruning

    model = tokcomp_jax.load(model_dir)
    tokenizer = family_of(model.config).load_tokenizer(model_dir)
    codec = ChatCodec(model.config, tokenizer, model_dir)
    values = np.zeros((len(images), len(options)))
    for i, image in enumerate(images):
        row = codec.encode(Prompt(f"q{i}", QUESTION, images=(Image.open(image).convert("RGB"),)))
        for j, option in enumerate(options):
            batch, positions = append_answers(row, [tokenizer.encode(f" {option}", add_special_tokens=False)])
            inputs, _ = prepare_pruning(model.config, batch, Buckets(text=64, visual=64))
            values[i, j] = float(answer_log_probs(model(inputs).logits, inputs.input_ids, positions).sum())
    return values


def test_multiple_choice_log_likelihoods_equal_the_projects_own(root):
    """Tolerance 1e-4 nats: float32, the plugin's batches of 2 against one row here."""
    model, tasks, images = family_setup(root)
    options = ["red", "a green square", "blue or black"]  # several tokens each: a sum is no mean
    write_records(tasks / "choice.jsonl", images, ["red"] * 6, options=options)
    lines = [
        dict(json.loads(line), label=i % 3) for i, line in enumerate((tasks / "choice.jsonl").read_text().splitlines())
    ]
    (tasks / "choice.jsonl").write_text("\n".join(map(json.dumps, lines)) + "\n")
    results = lmms_run(model, tasks, "tokcomp_choice")
    expected = own_log_likelihoods(model, images, options)
    got = np.zeros_like(expected)
    for sample in results["samples"]["tokcomp_choice"]:
        got[sample["doc_id"]] = [-resp[0][0] for resp in sample["resps"]]  # the plugin returns negative log-likelihoods
    np.testing.assert_allclose(got, expected, atol=1e-4)
    accuracy = np.mean(expected.argmax(1) == np.arange(6) % 3)
    assert results["results"]["tokcomp_choice"]["acc,none"] == pytest.approx(accuracy)


def test_the_cli_finds_tokcomp_jax_and_prints_lmms_evals_table(root, tmp_path):
    """On a converted checkpoint (orbax, with the tokenizer and processor files convert carries over)."""
    from conversion.convert import main as convert

    hf, tasks, images = family_setup(root)
    model = tmp_path / "converted"
    assert convert(["--src", str(hf), "--dst", str(model)]) == 0
    write_records(tasks / "yesno.jsonl", images, ["yes", "no"] * 3)
    command = [str(Path(sys.executable).parent / "lmms-eval"), "--model", "tokcomp_jax", "--model_args",
               f"pretrained={model},{BUCKETS},scorer=attention,keep=0.25", "--tasks", "tokcomp_yesno",
               "--include_path", str(tasks), "--batch_size", "2"]  # fmt: skip
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=600, env={**os.environ, "PYTHONPATH": str(REPO)}
    )
    assert done.returncode == 0, done.stderr[-3000:]
    table = [line for line in done.stdout.splitlines() if line.startswith("|")]
    assert any("tokcomp_yesno" in line and "exact_match" in line for line in table), done.stdout[-3000:]
    assert "scorer=attention,keep=0.25" in done.stdout  # the table's heading names the pruned run


def test_a_video_path_from_the_task_gives_the_projects_own_reply(root, tmp_path):
    """lmms-eval hands a video task's path: the model samples `frames` frames of it, as the project's
    runner does for the same VideoClip, and replies the same."""
    import av

    import tokcomp_jax
    from tokcomp_jax.eval.codecs import ChatCodec
    from tokcomp_jax.eval.runner import RunSettings, generate_records
    from tokcomp_jax.eval.samples import Prompt, VideoClip
    from tokcomp_jax.models.families import family_of

    model_dir, tasks, _ = family_setup(root)
    videos = []
    for i in range(2):
        videos.append(tmp_path / f"clip{i}.mp4")
        with av.open(str(videos[-1]), "w") as container:
            stream = container.add_stream("libx264", rate=4)
            stream.width, stream.height, stream.pix_fmt = 84, 56, "yuv420p"
            for level in range(8):
                frame = np.full((56, 84, 3), 30 * level + 40 * i, np.uint8)
                container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
            container.mux(stream.encode())
    lines = [json.dumps({"question": "what happens ?", "answer": "no", "video": str(v)}) for v in videos]
    (tasks / "video.jsonl").write_text("\n".join(lines) + "\n")
    results = lmms_run(model_dir, tasks, "tokcomp_video", frames=4)
    model = tokcomp_jax.load(model_dir)
    codec = ChatCodec(model.config, family_of(model.config).load_tokenizer(model_dir), model_dir)
    prompts = [Prompt(str(i), "what happens ?", video=VideoClip(v, num_frames=4)) for i, v in enumerate(videos)]
    settings = RunSettings(batch_size=2, text_buckets=(64, 128, 256), visual_buckets=(64, 256, 1024), max_new_tokens=4)
    own = {p.sample_id: r for pairs in generate_records(model, prompts, codec, settings) for p, r in pairs}
    for sample in results["samples"]["tokcomp_video"]:
        record = own[str(sample["doc_id"])]
        assert sample["resps"][0][0] == record["reply"]
        assert sample["token_counts"][0]["visual_tokens"] == record["visual_tokens"] > 0


SHARDED_RUN = """
import json, sys
sys.path.insert(0, {repo!r})
from tests.lmms.test_lmms_model import lmms_run
from pathlib import Path
results = lmms_run(Path({model!r}), Path({tasks!r}), "tokcomp_yesno", scorer="attention", keep=0.5, mesh_model=2)
print(json.dumps({{s["doc_id"]: s["resps"][0][0] for s in results["samples"]["tokcomp_yesno"]}}))
"""


def test_a_model_sharded_over_this_hosts_devices_replies_as_one_device(root):
    """4 fake CPU devices, mesh_model=2: a 2 x 2 (data x model) mesh; pruned replies equal one device's."""
    model, tasks, images = family_setup(root)
    write_records(tasks / "yesno.jsonl", images, ["yes", "no"] * 3)
    single = lmms_run(model, tasks, "tokcomp_yesno", scorer="attention", keep=0.5)
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4", "JAX_PLATFORMS": "cpu"}
    script = SHARDED_RUN.format(repo=str(REPO), model=str(model), tasks=str(tasks))
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    sharded = json.loads(done.stdout.strip().splitlines()[-1])
    assert {str(s["doc_id"]): s["resps"][0][0] for s in single["samples"]["tokcomp_yesno"]} == sharded


@pytest.mark.parametrize(
    ("args", "message"),
    [({"scorer": "mapper", "keep": 0.5}, "scorer=mapper needs mapper=DIR"),
     ({"scorer": "attention"}, "scorer=attention needs keep=RATIO"),
     ({"keep": 0.5}, "keep is a pruning ratio: give a scorer"),
     ({"scorer": "nonsense", "keep": 0.5}, "unknown")],
)  # fmt: skip
def test_model_args_that_cannot_make_a_run_are_refused_by_name(args, message):
    from tokcomp_lmms.model import TokcompJax

    with pytest.raises(ValueError, match=message):
        TokcompJax(pretrained="/no/such/checkpoint", **args)
