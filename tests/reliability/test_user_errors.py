"""A newcomer's mistakes (issue 40), each as the command line meets it: one `error:` line on stderr
naming what is wrong and what to do, exit status 2, no help text and no traceback (`--debug` shows
it), and refused before any weight loads where a config can tell."""

from __future__ import annotations

import json
import runpy
import shutil
import sys
from pathlib import Path

import pytest
from absl import flags
from flax import nnx

import tokcomp_jax.hosts  # noqa: F401  (the scripts' shared flags: defined once, before any snapshot of FLAGS)
from conversion.convert import main as convert_main
from conversion.tiny import save_tiny_checkpoint, write_jsonl_sample
from tests.scripts_module import load_script
from tokcomp_jax import cli
from tokcomp_jax.data.synthetic_labels import write_synthetic_labels
from tokcomp_jax.mapper import Mapper, MapperConfig, save_mapper
from tokcomp_jax.models.checkpoint import MODEL_FILE
from tokcomp_jax.prune import PruneConfig

REPO = Path(__file__).resolve().parents[2]
PROMPT = "what colour is the square ?"


def error_line(err: str) -> str:
    """The one `error:` line of a refusal's stderr; no traceback, usage or help text beside it."""
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, err
    assert "Traceback" not in err and "usage:" not in err and "USAGE" not in err and "Try --help" not in err, err
    return lines[0]


def command_line(script: str, *args: str, capsys) -> str:
    """An argparse script (scripts/<script>, or conversion.convert) run as its command line runs it,
    in process; returns its error line after checking exit status 2."""
    if script == "convert":
        main = convert_main
    else:
        module = load_script(script)
        main = module.main
    capsys.readouterr()
    with pytest.raises(SystemExit) as finished:
        cli.run_main(main, list(args))
    assert finished.value.code == 2
    return error_line(capsys.readouterr().err)


def absl_command_line(script: str, *args: str, monkeypatch, capsys) -> str:
    """An absl script run as `python scripts/<script> ARGS`; returns its error line (exit status 2)."""
    before = set(flags.FLAGS)
    monkeypatch.setattr(sys, "argv", [script, *args])
    capsys.readouterr()
    try:
        with pytest.raises(SystemExit) as finished:
            runpy.run_path(str(REPO / "scripts" / script), run_name="__main__")
    finally:
        for name in set(flags.FLAGS) - before:
            delattr(flags.FLAGS, name)
    assert finished.value.code == 2
    return error_line(capsys.readouterr().err)


@pytest.fixture(scope="module")
def qwen(tmp_path_factory) -> Path:
    """A tiny Qwen2-VL in its released (HF) layout: 2 decoder layers, tokenizer and processor files."""
    directory = tmp_path_factory.mktemp("qwen") / "qwen2_vl"
    save_tiny_checkpoint("qwen2_vl", directory)
    return directory


@pytest.fixture(scope="module")
def vila(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("vila") / "vila"
    save_tiny_checkpoint("vila", directory)
    return directory


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return write_jsonl_sample(tmp_path_factory.mktemp("data"))


@pytest.fixture
def weightless(qwen, tmp_path) -> Path:
    """The tiny model without its weights: any load fails, so a refusal here proves it came first."""
    directory = shutil.copytree(qwen, tmp_path / "weightless")
    (directory / "model.safetensors").unlink()
    return directory


def mapper_dir(directory: Path, family: str | None) -> Path:
    return save_mapper(directory, Mapper(MapperConfig(num_heads=4, channels=(8,), family=family), rngs=nnx.Rngs(0)))


# --- generate.py -------------------------------------------------------------------------


def test_a_wrong_model_path(tmp_path, data, capsys):
    line = command_line("generate", "--model", str(tmp_path / "qwen"), "--image", str(data / "img/0.png"),
                        "--prompt", PROMPT, capsys=capsys)  # fmt: skip
    assert line == f"error: {tmp_path / 'qwen'} does not exist"


def test_a_folder_that_is_no_model(data, capsys):
    line = command_line("generate", "--model", str(data), "--prompt", PROMPT, capsys=capsys)
    assert line == f"error: {data} holds no config.json (a Hugging Face checkpoint) nor {MODEL_FILE} (a converted " \
                   "model): not a model directory"  # fmt: skip


@pytest.mark.parametrize(("keep", "expected"), [
    ("25", "--keep 25.0: keep_ratio must be in (0, 1], got 25.0 (the fraction of visual tokens to keep; for 25% write 0.25)"),
    ("50%", "argument --keep: '50%' is not a number; give the fraction of visual tokens to keep, in (0, 1] (write 0.5 for 50%)"),
    ("half", "argument --keep: 'half' is not a number"),
])  # fmt: skip
def test_keep_as_a_percentage_or_not_a_number(keep, expected, capsys):
    line = command_line("generate", "--model", "/nonexistent", "--prompt", PROMPT, "--keep", keep, "--scorer",
                        "attention", capsys=capsys)  # fmt: skip
    assert line.startswith(f"error: {expected}")


def test_a_missing_image(qwen, tmp_path, capsys):
    line = command_line("generate", "--model", str(qwen), "--image", str(tmp_path / "photo.jpg"), "--prompt", PROMPT,
                        capsys=capsys)  # fmt: skip
    assert line == f"error: --image {tmp_path / 'photo.jpg'} does not exist; check the path"


def test_a_mapper_workdir_for_its_mapper(weightless, data, tmp_path, capsys):
    mapper_dir(tmp_path / "workdir" / "mapper", "qwen2_vl")
    line = command_line("generate", "--model", str(weightless), "--image", str(data / "img/0.png"), "--prompt", PROMPT,
                        "--keep", "0.5", "--mapper", str(tmp_path / "workdir"), capsys=capsys)  # fmt: skip
    assert line == (f"error: {tmp_path / 'workdir'} is a mapper's training directory; pass the trained mapper in it: "
                    f"{tmp_path / 'workdir' / 'mapper'}")  # fmt: skip


@pytest.mark.parametrize("script", ["generate", "evaluate"])
def test_a_mapper_of_another_family_or_of_none_before_the_model_loads(
    script, weightless, data, tmp_path, monkeypatch, capsys
):
    for family, expected in [
        ("vila", f"was trained on vila attention, but {weightless} is a qwen2_vl model"),
        (None, "records no model family (trained without --config.data.family)"),
    ]:
        mapper = mapper_dir(tmp_path / f"mapper-{family}", family)
        if script == "generate":
            line = command_line("generate", "--model", str(weightless), "--image", str(data / "img/0.png"),
                                "--prompt", PROMPT, "--keep", "0.5", "--mapper", str(mapper), capsys=capsys)  # fmt: skip
        else:
            line = absl_command_line("evaluate.py", "--config", "configs/eval/jsonl.py:test.jsonl", "--data_dir",
                                     str(data), "--model", str(weightless), "--mapper", str(mapper), "--out",
                                     str(tmp_path / "eval"), monkeypatch=monkeypatch, capsys=capsys)  # fmt: skip
        assert line.startswith(f"error: mapper {mapper} ") and expected in line


def test_a_tokenizer_directory_without_tokenizer_files(qwen, vila, data, capsys):
    line = command_line("generate", "--model", str(qwen), "--prompt", PROMPT, "--tokenizer", str(data), capsys=capsys)
    assert line == (f"error: --tokenizer: {data} holds no tokenizer files (expected one of tokenizer.json, "
                    "tokenizer.model, vocab.json, vocab.txt, spiece.model)")  # fmt: skip
    line = command_line("generate", "--model", str(vila), "--prompt", PROMPT, "--tokenizer", str(vila), capsys=capsys)
    assert line.endswith(f"; {vila / 'llm'} holds one: pass that directory")


def test_a_vila_part_given_as_the_model(vila, capsys):
    hint = f"this looks like VILA1.5's llm/ part: pass the checkpoint's top directory ({vila})"
    line = command_line("generate", "--model", str(vila / "llm"), "--prompt", PROMPT, capsys=capsys)
    assert "model_type 'llama' is not supported" in line and line.endswith(hint)
    line = command_line("convert", "--src", str(vila / "llm"), "--dst", str(vila.parent / "out"), capsys=capsys)
    assert line.endswith(hint) and not (vila.parent / "out").exists()


@pytest.mark.parametrize(("scorer", "expected"), [
    ("fastv", "fastv prunes before layer 2; the decoder has 2 layers: it needs at least 3"),
    ("pdrop", "pdrop (PyramidDrop) prunes before layers L/4, L/2 and 3L/4: it needs at least 4 layers; the decoder has 2"),
])  # fmt: skip
def test_an_in_llm_method_on_a_model_too_shallow(scorer, expected, weightless, data, tmp_path, monkeypatch, capsys):
    with pytest.raises(ValueError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        PruneConfig(scorer, 0.5).check_depth(2)
    PruneConfig("attention", 0.5).check_depth(1)  # an input-level scorer fits any depth
    line = command_line("generate", "--model", str(weightless), "--image", str(data / "img/0.png"), "--prompt",
                        PROMPT, "--keep", "0.5", "--scorer", scorer, capsys=capsys)  # fmt: skip
    assert line.startswith(f"error: {expected}")
    line = absl_command_line("evaluate.py", "--config", "configs/eval/jsonl.py:test.jsonl", "--data_dir", str(data),
                             "--model", str(weightless), "--scorer", scorer, "--out", str(tmp_path / "eval"),
                             monkeypatch=monkeypatch, capsys=capsys)  # fmt: skip
    assert line.startswith(f"error: run {scorer}@0.5 of {weightless}: {expected}")


def test_generate_unpruned_needs_no_mapper(qwen, data, capsys):
    """--keep 1.0 (the default) answers unpruned; the help's first example, as written."""
    module = load_script("generate")
    result = module.main(["--model", str(qwen), "--image", str(data / "img/0.png"), "--prompt", PROMPT,
                          "--max_new_tokens", "2"])  # fmt: skip
    assert result["pruning"] == "none (--keep 1.0)" and "prefill_s_pruned" not in result
    assert result["visual_tokens_kept"] == result["visual_tokens_total"] > 0
    capsys.readouterr()
    module.main(["--model", str(qwen), "--prompt", PROMPT, "--scorer", "attention", "--max_new_tokens", "2"])
    assert "note: without --keep every visual token is kept (unpruned); --scorer prune at --keep below 1" in (
        capsys.readouterr().err
    )  # a scorer given without --keep is not silently ignored
    line = command_line("generate", "--model", str(qwen), "--prompt", PROMPT, "--keep", "0.5", capsys=capsys)
    assert line.startswith("error: --keep 0.5 with --scorer mapper needs --mapper DIR")


def test_debug_shows_the_traceback(tmp_path, capsys):
    module = load_script("generate")
    with pytest.raises(SystemExit) as finished:
        cli.run_main(module.main, ["--model", str(tmp_path / "none"), "--prompt", PROMPT, "--debug"])
    err = capsys.readouterr().err
    assert (
        finished.value.code == 2 and "Traceback" in err and err.rstrip().endswith(f"{tmp_path / 'none'} does not exist")
    )


# --- conversion.convert ------------------------------------------------------------------


def test_convert_tells_a_converted_a_missing_and_a_wrong_directory_apart(qwen, data, tmp_path, capsys):
    converted = tmp_path / "converted"
    converted.mkdir()
    (converted / MODEL_FILE).write_text("{}")
    dst = str(tmp_path / "out")
    assert command_line("convert", "--src", str(converted), "--dst", dst, capsys=capsys).startswith(
        f"error: --src {converted} is a converted tokcomp model ({MODEL_FILE}); convert takes a Hugging Face directory"
    )
    line = command_line("convert", "--src", str(tmp_path / "none"), "--dst", dst, capsys=capsys)
    assert line == f"error: --src {tmp_path / 'none'} does not exist"
    line = command_line("convert", "--src", str(data), "--dst", dst, capsys=capsys)
    assert line == f"error: --src {data} holds no config.json: not a model directory"
    assert not Path(dst).exists()


def test_convert_accepts_the_model_type_names_it_prints(qwen, tmp_path, capsys):
    line = command_line("convert", "--src", str(qwen), "--dst", str(tmp_path / "out"), "--family", "llava_llama",
                        capsys=capsys)  # fmt: skip
    assert line == f"error: {qwen}/config.json is a qwen2_vl checkpoint, not llava_llama"  # a family, not a flag error


@pytest.mark.parametrize(("stored", "written"), [("bfloat16", "bfloat16"), ("float16", "float32")])
def test_convert_writes_the_checkpoints_own_dtype_and_says_so(qwen, tmp_path, capsys, stored, written):
    source = shutil.copytree(qwen, tmp_path / "hf")
    config = json.loads((source / "config.json").read_text())
    config.pop("dtype", None)
    (source / "config.json").write_text(json.dumps({**config, "torch_dtype": stored}))
    assert convert_main(["--src", str(source), "--dst", str(tmp_path / "out")]) == 0
    assert json.loads((tmp_path / "out" / MODEL_FILE).read_text())["dtype"] == written
    said = capsys.readouterr().err
    assert f"wrote {tmp_path / 'out'} in {written} (" in said
    assert ("the checkpoint's own" in said) if stored == written else ("the checkpoint's float16 is not one of" in said)


# --- evaluate.py, label.py, train_mapper.py ------------------------------------------------


def test_evaluate_data_error_is_one_line_without_the_help(tmp_path, monkeypatch, capsys):
    line = absl_command_line("evaluate.py", "--config", "configs/eval/jsonl.py:test.jsonl", "--data_dir",
                             str(tmp_path / "data"), "--model", "/nonexistent", "--scorer", "attention", "--out",
                             str(tmp_path / "eval"), monkeypatch=monkeypatch, capsys=capsys)  # fmt: skip
    assert line == f"error: 1 problem in the benchmark data: test: missing benchmark file {tmp_path}/data/test.jsonl"


def test_label_data_dir_given_the_data_directory(data, tmp_path, monkeypatch, capsys):
    line = absl_command_line("label.py", "--config.source=benchmark", "--config.model=/nonexistent",
                             f"--config.data_dir={data}", "--out", str(tmp_path / "labels"), monkeypatch=monkeypatch,
                             capsys=capsys)  # fmt: skip
    assert line == (f"error: --config.data_dir {data} is a directory; give the jsonl file to label as the 'train' "
                    f"split, e.g. --config.data_dir={data / 'train.jsonl'} (it holds test.jsonl, train.jsonl)")  # fmt: skip
    assert not (tmp_path / "labels").exists()


def test_train_mapper_needs_the_family_and_a_label_dataset(tmp_path, monkeypatch, capsys):
    labels = tmp_path / "labels"
    write_synthetic_labels(labels / "tfds", {"train": (4, 3, 4)}, 2, 0)
    workdir = tmp_path / "workdir"
    train = ["train_mapper.py", "--config", "configs/mapper/paper.py:runlocal", "--workdir", str(workdir)]
    line = absl_command_line(*train, f"--config.data.dir={labels / 'tfds'}", monkeypatch=monkeypatch, capsys=capsys)
    assert line.startswith("error: --config.data.family is not set: name the family of the model that labelled")
    line = absl_command_line(*train, f"--config.data.dir={labels}", "--config.data.family=qwen2_vl",
                             monkeypatch=monkeypatch, capsys=capsys)  # fmt: skip
    assert line.endswith(f"holds no label dataset (dataset_info.json); label.py wrote it to {labels / 'tfds'}")
    line = absl_command_line(*train, f"--config.data.dir={labels / 'tfds'}", "--config.data.family=llava_llama",
                             monkeypatch=monkeypatch, capsys=capsys)  # fmt: skip
    assert "has no split 'validation' (it holds 'train')" in line and '--config.data.eval_splits="()"' in line
    assert not workdir.exists()


# --- one flag style ------------------------------------------------------------------------


def test_flags_take_underscores_and_the_hyphen_spelling():
    parser = cli.ArgumentParser("a script")
    parser.add_argument("--max_new_tokens", type=int, default=32, help="answer length")
    assert parser.parse_args(["--max-new-tokens", "4"]).max_new_tokens == 4
    assert parser.parse_args(["--max_new_tokens=5"]).max_new_tokens == 5
    assert "answer length (default: 32)" in " ".join(parser.format_help().split())
    with pytest.raises(SystemExit, match="unrecognized arguments: --max-tokens"):
        parser.parse_args(["--max-tokens", "4"])


@pytest.mark.parametrize("path", ["scripts/generate.py", "scripts/evaluate.py", "scripts/label.py",
                                  "scripts/train_mapper.py", "scripts/score.py", "scripts/visualize.py",
                                  "conversion/convert.py"])  # fmt: skip
def test_each_script_states_the_rule(path):
    docstring = (REPO / path).read_text().split('"""')[1]
    assert "Flags use underscores" in docstring and "`error:` line" in docstring, path
    assert "run_main(main)" in (REPO / path).read_text() or "run_absl(main)" in (REPO / path).read_text()


def test_a_config_file_that_is_missing_or_refuses_its_variant(tmp_path, monkeypatch, capsys):
    line = absl_command_line("evaluate.py", "--config", "configs/eval/nope.py", "--model", "/nonexistent",
                             "--scorer", "attention", monkeypatch=monkeypatch, capsys=capsys)  # fmt: skip
    assert line == "error: --config configs/eval/nope.py: no such config file (the configs are under configs/)"
    line = absl_command_line("train_mapper.py", "--config", "configs/mapper/paper.py:bogus", "--workdir",
                             str(tmp_path / "workdir"), monkeypatch=monkeypatch, capsys=capsys)  # fmt: skip
    assert line == ("error: flag --config=configs/mapper/paper.py:bogus: unknown mapper config variants ['bogus']; "
                    "known: ('heads', 'grid', 'v2', 'synthetic', 'runlocal')")  # fmt: skip


def test_head_weights_for_another_scorer_or_model_before_the_model_loads(weightless, qwen, data, tmp_path,
                                                                           monkeypatch, capsys):  # fmt: skip
    """--head_weights are HAWK's, and must be of this model's family and layer-0 head count; with both right,
    generate.py prunes by them."""
    heads = json.loads((qwen / "config.json").read_text())["text_config"]["num_attention_heads"]
    wrong, right = tmp_path / "wrong.json", tmp_path / "right.json"
    for path, count in ((wrong, heads + 1), (right, heads)):
        path.write_text(json.dumps({"family": "qwen2_vl", "weights": [1.0 / count] * count}))
    image = ["--image", str(data / "img/0.png"), "--prompt", PROMPT, "--keep", "0.5"]
    line = command_line("generate", "--model", str(weightless), *image, "--scorer", "attention", "--head_weights",
                        str(right), capsys=capsys)  # fmt: skip
    assert line == "error: --head_weights are HAWK's; use them with --scorer hawk (not attention)"
    line = command_line("generate", "--model", str(weightless), *image, "--scorer", "hawk", "--head_weights",
                        str(wrong), capsys=capsys)  # fmt: skip
    assert line.startswith(f"error: {wrong} holds {heads + 1} head weights of a 'qwen2_vl' model; this model is")
    line = absl_command_line("evaluate.py", "--config", "configs/eval/jsonl.py:test.jsonl", "--data_dir", str(data),
                             "--model", str(weightless), "--scorer", "hawk", "--head_weights", str(wrong), "--out",
                             str(tmp_path / "eval"), monkeypatch=monkeypatch, capsys=capsys)  # fmt: skip
    assert line.startswith(f"error: --head_weights: {wrong} holds {heads + 1} head weights")
    module = load_script("generate")
    result = module.main(["--model", str(qwen), *image, "--scorer", "hawk", "--head_weights", str(right),
                          "--max_new_tokens", "2"])  # fmt: skip
    assert result["pruning"] == "hawk at keep 0.5" and result["visual_tokens_kept"] < result["visual_tokens_total"]
