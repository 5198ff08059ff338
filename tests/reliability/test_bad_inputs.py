"""The cases a bad-input sweep found (issue 39): nothing of the user's lost, nothing silently wrong,
every refusal one line naming the file, flag, field or line, and made before anything is written or
loaded where it can be (the flags first, then the data, then the model)."""

from __future__ import annotations

import dataclasses
import json
import runpy
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from absl import flags
from flax import nnx
from PIL import Image

import tokcomp_jax
import tokcomp_jax.hosts  # noqa: F401  (the scripts' shared flags: defined once, before any snapshot of FLAGS)
from conversion.convert import main as convert
from scripts.score import main as score
from tests.scripts_module import load_script
from tokcomp_jax.eval.adapters import read_mme
from tokcomp_jax.eval.check import read_suite
from tokcomp_jax.eval.results import ResultsFile, data_fingerprint
from tokcomp_jax.eval.runner import RunSettings, evaluate
from tokcomp_jax.eval.samples import EvalSample, VideoClip, load_video
from tokcomp_jax.files import CheckpointError
from tokcomp_jax.models import Qwen2VL, Qwen2VLConfig, prepare_inputs
from tokcomp_jax.models.checkpoint import save
from tokcomp_jax.models.common.config import PositionWarning
from tokcomp_jax.models.families import FAMILIES
from tokcomp_jax.models.qwen2_vl.processor import build_inputs, image_processor
from tokcomp_jax.runs import RUN_MARK

NOWHERE = "/nonexistent/model"  # a model that would fail to load: a refusal before it proves the order


def run_script(script: str, *args: str, monkeypatch, capsys) -> tuple[int, str]:
    """(exit code, stderr) of scripts/<script> run as `python scripts/<script> ARGS` (absl: a
    usage error exits 2 and prints its message as one line)."""
    before = set(flags.FLAGS)
    monkeypatch.setattr(sys, "argv", [script, *args])
    capsys.readouterr()
    try:
        with pytest.raises(SystemExit) as finished:
            runpy.run_path(f"scripts/{script}", run_name="__main__")
    finally:
        for name in set(flags.FLAGS) - before:
            delattr(flags.FLAGS, name)
    return finished.value.code or 0, capsys.readouterr().err


def generate_script(*args: str) -> dict:
    """scripts/generate.py's main(args)."""
    module = load_script("generate")
    return module.main(list(args))


def jsonl_bench(directory: Path, name: str, ids, answer: str = "red") -> Path:
    (directory / "img").mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.zeros((28, 28, 3), np.uint8)).save(directory / "img" / "0.png")
    lines = [json.dumps({"id": i, "question": "which colour ?", "answer": answer, "image": "img/0.png"}) for i in ids]
    path = directory / f"{name}.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


EVALUATE = ["--config", "configs/eval/miniature.py", "--scorer", "attention"]  # test.jsonl and test_2x.jsonl


# --- lost data ---


@pytest.mark.parametrize("where", ["same", "inside", "holding"])
def test_convert_never_writes_into_or_over_its_source(tmp_path, capsys, where):
    source = tmp_path / "checkpoint"
    source.mkdir()
    (source / "config.json").write_text('{"model_type": "qwen2_vl"}')
    (source / "model.safetensors").write_bytes(b"weights")
    destination = {"same": source, "inside": source / "converted", "holding": tmp_path}[where]
    assert convert(["--src", str(source), "--dst", str(destination), "--overwrite"]) == 2
    message = {"same": "is --src itself", "inside": "lies inside --src", "holding": "holds --src"}[where]
    assert message in capsys.readouterr().err
    assert sorted(p.name for p in source.iterdir()) == ["config.json", "model.safetensors"]
    assert (source / "model.safetensors").read_bytes() == b"weights"


def test_convert_overwrite_replaces_only_a_model_directory(tmp_path, capsys):
    folder = tmp_path / "documents"
    folder.mkdir()
    (folder / "thesis.tex").write_text("years of work")
    assert convert(["--src", str(tmp_path / "hf"), "--dst", str(folder), "--overwrite"]) == 2
    assert "holds files but no converted model (tokcomp_model.json)" in capsys.readouterr().err
    assert (folder / "thesis.tex").read_text() == "years of work"


def test_evaluate_out_that_a_user_made_is_refused_before_anything(tmp_path, monkeypatch, capsys):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("notes")
    (mine / "results.json").write_text('{"mine": true}')
    for extra in ([], ["--overwrite"], ["--rescore"]):
        code, error = run_script("evaluate.py", *EVALUATE, "--data_dir", str(tmp_path / "no-data"), "--model",
                                 NOWHERE, "--out", str(mine), *extra, monkeypatch=monkeypatch, capsys=capsys)  # fmt: skip
        assert code == 2 and "holds files that no run of this project made (notes.txt, results.json)" in error
    assert sorted(p.name for p in mine.iterdir()) == ["notes.txt", "results.json"]
    assert (mine / "results.json").read_text() == '{"mine": true}'


# --- silently wrong ---


def _stored_run(out: Path, data: Path, name: str, replies: dict[str, str], cut_last: bool = False) -> None:
    """An earlier run's results as scripts/evaluate.py leaves them: replies and their fingerprint."""
    samples = read_suite([(name, "jsonl", data / f"{name}.jsonl")])[0][name]
    for run in ("unpruned", "attention@0.5"):
        (out / name).mkdir(parents=True, exist_ok=True)
        lines = [json.dumps({"sample_id": k, "reply": v, "flops_pct": 50.0}) for k, v in replies.items()]
        text = "\n".join(lines) + "\n"
        (out / name / f"{run}.host0.jsonl").write_text(text[:-9] if cut_last and run != "unpruned" else text)
        fingerprint = {"hosts": 1, "data": data_fingerprint("jsonl", data / f"{name}.jsonl", samples)}
        (out / name / f"{run}.host0.fingerprint.json").write_text(json.dumps(fingerprint))
    (out / RUN_MARK).touch()


def _rescore_setup(tmp_path: Path, cut_last: bool = False) -> tuple[Path, Path]:
    data, out = tmp_path / "data", tmp_path / "out"
    for name in ("test", "test_2x"):
        jsonl_bench(data, name, ["a", "b", "c"])
        _stored_run(out, data, name, {"a": "red", "b": "red", "c": "blue"}, cut_last=cut_last and name == "test")
    (out / "results.json").write_text("earlier report")
    return data, out


def test_rescore_refuses_replies_made_from_another_benchmark(tmp_path, monkeypatch, capsys):
    data, out = _rescore_setup(tmp_path)
    jsonl_bench(data, "test", ["a", "b", "c"], answer="blue")  # the same ids, other answers
    code, error = run_script("evaluate.py", *EVALUATE, "--data_dir", str(data), "--out", str(out), "--rescore",
                             monkeypatch=monkeypatch, capsys=capsys)  # fmt: skip
    assert code == 2 and "attention@0.5.host0.jsonl was made from other benchmark data than test" in error
    assert "(samples differ from attention@0.5.host0.fingerprint.json)" in error
    assert (out / "results.json").read_text() == "earlier report"
    jsonl_bench(data, "test", ["a", "b", "c"])  # the data it was made from: rescored
    code, _ = run_script("evaluate.py", *EVALUATE, "--data_dir", str(data), "--out", str(out), "--rescore",
                         monkeypatch=monkeypatch, capsys=capsys)  # fmt: skip
    assert code == 0 and json.loads((out / "results.json").read_text())["rows"][0]["samples"] == 3


def test_rescore_refuses_a_run_cut_short_or_unfinished(tmp_path, monkeypatch, capsys):
    data, out = _rescore_setup(tmp_path, cut_last=True)
    args = [*EVALUATE, "--data_dir", str(data), "--out", str(out), "--rescore"]
    code, error = run_script("evaluate.py", *args, monkeypatch=monkeypatch, capsys=capsys)
    assert code == 2 and "attention@0.5.host0.jsonl:3: not a whole record" in error
    results = out / "test" / "attention@0.5.host0.jsonl"
    results.write_text("\n".join(results.read_text().splitlines()[:2]) + "\n")  # whole lines, one sample short
    code, error = run_script("evaluate.py", *args, monkeypatch=monkeypatch, capsys=capsys)
    assert code == 2 and "attention@0.5: 1 samples have no reply: ['c']; finish the run" in error
    assert (out / "results.json").read_text() == "earlier report"


@pytest.mark.parametrize(("keep", "message"), [("", "--keep is empty"), ("half", "--keep 'half' is not a number"),
                                               ("0.5,2", "--keep 2: keep_ratio must be in (0, 1], got 2.0")])  # fmt: skip
def test_evaluate_keep_ratios_are_checked_first(tmp_path, monkeypatch, capsys, keep, message):
    code, error = run_script("evaluate.py", *EVALUATE, f"--keep={keep}", "--data_dir", str(tmp_path / "no-data"),
                             "--model", NOWHERE, "--out", str(tmp_path / "out"), monkeypatch=monkeypatch,
                             capsys=capsys)  # fmt: skip
    assert code == 2 and message in error
    assert not (tmp_path / "out").exists()


def test_python_forward_past_the_positions_warns():
    config = Qwen2VLConfig.tiny()
    short = dataclasses.replace(config, text=dataclasses.replace(config.text, max_position_embeddings=16))
    with pytest.warns(PositionWarning, match=r"reach position 19, past the model's max_position_embeddings 16"):
        prepare_inputs(short, input_ids=np.arange(1, 21)[None])
    mask = np.array([[1] * 12 + [0] * 8])  # padding past the limit is no position of a real token
    prepare_inputs(short, input_ids=np.arange(1, 21)[None], attention_mask=mask)


def test_image_processor_refuses_pixel_limits_that_cannot_hold():
    config = Qwen2VLConfig.tiny()
    with pytest.raises(ValueError, match=r"min_pixels 3136, max_pixels 10 cannot hold: need 0 < min_pixels <= "
                                         r"max_pixels and max_pixels >= 784 \(one visual token\)"):  # fmt: skip
        image_processor(config, min_pixels=3136, max_pixels=10)
    with pytest.raises(ValueError, match=r"min_pixels 4000, max_pixels 3136 cannot hold"):
        image_processor(config, min_pixels=4000, max_pixels=3136)
    assert image_processor(config, min_pixels=784, max_pixels=784) is not None


def test_evaluate_api_refuses_repeated_sample_ids(tmp_path):
    samples = [EvalSample("b", f"q{i % 5}", "which colour ?", ("red",), "exact") for i in range(6)]
    with pytest.raises(ValueError, match=r"sample ids must be unique; repeated: \['q0'\]"):
        evaluate(None, samples, None, RunSettings(), ResultsFile(tmp_path / "r.jsonl"))
    assert not (tmp_path / "r.jsonl").exists()


# --- obscure messages ---


def test_config_json_missing_hidden_size_names_it(tmp_path):
    text = {"vocab_size": 256, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
            "num_key_value_heads": 2, "rope_parameters": {"mrope_section": [2, 3, 3], "rope_theta": 10000.0}}  # fmt: skip
    vision = {"depth": 2, "embed_dim": 32, "num_heads": 4, "hidden_size": 64}
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "qwen2_vl", "text_config": text,
                                                      "vision_config": vision}))  # fmt: skip
    with pytest.raises(CheckpointError, match=r"config\.json: cannot build a qwen2_vl config: mrope_section .* the "
                                              r"file leaves out hidden_size \(transformers' default 8192 taken\)"):  # fmt: skip
        tokcomp_jax.load(tmp_path)


@pytest.fixture(scope="module")
def orbax_model(tmp_path_factory) -> Path:
    config = Qwen2VLConfig.tiny()
    directory = tmp_path_factory.mktemp("orbax") / "model"
    params = nnx.to_pure_dict(nnx.state(Qwen2VL(config, rngs=nnx.Rngs(0)), nnx.Param))
    save(directory, FAMILIES["qwen2_vl"], config, "float32", params)
    return directory


@pytest.mark.parametrize("damage", ["truncated", "deleted"])
def test_orbax_data_files_damaged_name_the_parameters(orbax_model, tokenizer, tmp_path, monkeypatch, capsys, damage):
    model = shutil.copytree(orbax_model, tmp_path / "model")
    tokenizer.save_pretrained(model)  # as a converted directory holds it: generate.py reads it before the weights
    largest = max((model / "params").rglob("d/*"), key=lambda path: path.stat().st_size)
    if damage == "truncated":
        largest.write_bytes(largest.read_bytes()[:1000])
    else:
        largest.unlink()
    expected = (r"params: the stored data of (language_model|visual|lm_head)\.\S+ \(and perhaps of others\) cannot be "
                r"read: a data file under it is truncated or missing; copy the model directory again")  # fmt: skip
    with pytest.raises(CheckpointError, match=expected):
        tokcomp_jax.load(model)
    with pytest.raises(SystemExit, match=expected):  # generate: one line, not a traceback
        generate_script("--model", str(model), "--prompt", "what colour ?", "--scorer", "attention")
    jsonl_bench(tmp_path / "data", "test", ["a"])
    jsonl_bench(tmp_path / "data", "test_2x", ["a"])
    code, error = run_script("evaluate.py", *EVALUATE, "--data_dir", str(tmp_path / "data"), "--model", str(model),
                             "--out", str(tmp_path / "out"), monkeypatch=monkeypatch, capsys=capsys)  # fmt: skip
    assert code == 2 and "cannot be read: a data file under it is truncated or missing" in error


def test_a_bytes_prompt_names_the_type(tokenizer):
    config = Qwen2VLConfig.tiny()
    with pytest.raises(TypeError, match=r"prompt must be a str, got bytes \(decode bytes first\)"):
        build_inputs(config, tokenizer, image_processor(config), b"what")


@pytest.mark.parametrize("name", ["shard_size", "batch_size", "max_new_tokens", "count"])
def test_label_counts_below_one_are_refused_before_the_model(tmp_path, monkeypatch, capsys, name):
    code, error = run_script("label.py", f"--config.{name}=0", f"--config.model={NOWHERE}", "--out",
                             str(tmp_path / "labels"), monkeypatch=monkeypatch, capsys=capsys)  # fmt: skip
    assert code == 2 and f"--config.{name} must be a whole number of at least 1, got 0" in error


def test_evaluate_out_naming_a_file_is_refused_first(tmp_path, monkeypatch, capsys):
    (tmp_path / "results.txt").write_text("mine")
    code, error = run_script("evaluate.py", *EVALUATE, "--data_dir", str(tmp_path / "no-data"), "--model", NOWHERE,
                             "--out", str(tmp_path / "results.txt"), monkeypatch=monkeypatch, capsys=capsys)  # fmt: skip
    assert code == 2 and f"--out {tmp_path / 'results.txt'} is a file; choose a directory" in error
    assert (tmp_path / "results.txt").read_text() == "mine"


def test_video_frames_of_different_sizes_name_the_files(tmp_path):
    frames = tmp_path / "clip"
    frames.mkdir()
    for number, (height, width) in enumerate([(28, 28), (56, 28), (28, 28)], 1):
        Image.fromarray(np.zeros((height, width, 3), np.uint8)).save(frames / f"{number:05d}.png")
    expected = r"frames differ in size \(00001\.png is 28x28, 00002\.png is 28x56 pixels\); resize them to one size"
    with pytest.raises(ValueError, match=expected):
        load_video(VideoClip(frames, num_frames=3))
    with pytest.raises(SystemExit, match=expected):  # before the model loads
        generate_script("--model", NOWHERE, "--video", str(frames), "--frames", "3", "--prompt", "what ?",
                        "--scorer", "attention")  # fmt: skip


BAD_BYTE = "byte 0xff at column"


def _with_bad_byte(path: Path, line: int = 2) -> None:
    lines = path.read_bytes().split(b"\n")
    lines[line - 1] = lines[line - 1].replace(b"which", b"wh\xffich").replace(b"red", b"r\xffed")
    path.write_bytes(b"\n".join(lines))


def test_non_utf8_in_a_benchmark_file_is_named_by_file_and_line(tmp_path, capsys):
    bench = jsonl_bench(tmp_path / "data", "test", ["a", "b", "c"])
    _with_bad_byte(bench)
    _, problems = read_suite([("test", "jsonl", bench)])  # what evaluate.py reports before the model
    assert problems == [f"test: {bench}:2: {BAD_BYTE} 28 is not UTF-8; save the file as UTF-8"]
    assert score(["--benchmark", "jsonl", "--data_dir", str(bench), "--list_samples", str(tmp_path / "s.jsonl")]) == 2
    assert f"{bench}:2: {BAD_BYTE} 28 is not UTF-8" in capsys.readouterr().err and not (tmp_path / "s.jsonl").exists()


def test_non_utf8_in_an_answer_is_named_by_file_and_line(tmp_path, monkeypatch, capsys):
    category = tmp_path / "mme" / "existence"  # MME's question<TAB>answer files
    category.mkdir(parents=True)
    Image.fromarray(np.zeros((28, 28, 3), np.uint8)).save(category / "1.png")
    (category / "1.txt").write_bytes(b"Is there a dog?\tYes\nIs there a cat?\tN\xffo\n")
    with pytest.raises(ValueError, match=rf"1\.txt:2: {BAD_BYTE} 18 is not UTF-8"):
        read_mme(tmp_path / "mme")
    data, out = _rescore_setup(tmp_path)  # a stored reply, read by --rescore
    results = out / "test" / "unpruned.host0.jsonl"
    results.write_bytes(results.read_bytes().replace(b'"reply": "blue"', b'"reply": "bl\xffue"'))
    code, error = run_script("evaluate.py", *EVALUATE, "--data_dir", str(data), "--out", str(out), "--rescore",
                             monkeypatch=monkeypatch, capsys=capsys)  # fmt: skip
    assert code == 2 and f"unpruned.host0.jsonl:3: not a whole record ({BAD_BYTE} 32 is not UTF-8" in error


def test_non_utf8_in_replies_to_score_is_named_by_file_and_line(tmp_path, capsys):
    bench = jsonl_bench(tmp_path / "data", "test", ["a", "b"])
    replies = tmp_path / "replies.jsonl"
    replies.write_bytes(b'{"sample_id": "a", "reply": "red"}\n{"sample_id": "b", "reply": "r\xffed"}\n')
    assert score(["--benchmark", "jsonl", "--data_dir", str(bench), "--replies", str(replies)]) == 2
    assert f"{replies}:2: {BAD_BYTE} 31 is not UTF-8" in capsys.readouterr().err


def test_non_utf8_in_label_data_is_named_before_the_model(tmp_path, monkeypatch, capsys):
    bench = jsonl_bench(tmp_path / "data", "test", ["a", "b", "c"])
    _with_bad_byte(bench)
    code, error = run_script("label.py", "--config.source=benchmark", f"--config.model={NOWHERE}",
                             f"--config.data_dir={bench}", "--out", str(tmp_path / "labels"),
                             monkeypatch=monkeypatch, capsys=capsys)  # fmt: skip
    assert code == 2 and f"{bench}:2: {BAD_BYTE} 28 is not UTF-8" in error


def test_generate_picture_into_a_missing_folder_is_refused_first(tmp_path):
    Image.fromarray(np.zeros((28, 28, 3), np.uint8)).save(tmp_path / "x.png")
    with pytest.raises(SystemExit, match=rf"--picture {tmp_path}/missing/kept\.png: its folder {tmp_path}/missing "
                                         r"does not exist; choose a file in an existing folder"):  # fmt: skip
        generate_script("--model", NOWHERE, "--image", str(tmp_path / "x.png"), "--prompt", "what ?", "--scorer",
                        "attention", "--picture", str(tmp_path / "missing" / "kept.png"))  # fmt: skip


def test_generate_keep_ratio_is_checked_before_the_model():
    with pytest.raises(SystemExit, match=r"--keep 2\.0: keep_ratio must be in \(0, 1\], got 2\.0"):
        generate_script("--model", NOWHERE, "--prompt", "what ?", "--scorer", "attention", "--keep", "2")
