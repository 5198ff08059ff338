"""Readers for benchmarks in their published formats, from a local directory (nothing downloads).

Each reader takes the benchmark's directory (as unpacked from its release) and returns EvalSamples
in the file's order; `read_benchmark(name, data_dir)` picks one from ADAPTERS. A missing file or
field raises a ValueError that names the file and what is missing.

| name      | files under data_dir                                                 | metric: the official rule followed          |
|-----------|----------------------------------------------------------------------|---------------------------------------------|
| gqa       | questions/testdev_balanced_questions.json, images/<imageId>.jpg      | gqa: LLaVA convert_gqa_for_eval + GQA eval.py |
| textvqa   | TextVQA_0.5.1_val.json, train_images/<image_id>.jpg                  | vqa: the VQA normaliser, leave-one-out       |
| pope      | coco_pope_{random,popular,adversarial}.json (jsonl), val2014/<image> | pope: POPE evaluate.py, F1 per split         |
| mme       | [one level of folder, then] <category>/{images,questions_answers_YN}/ or <category>/<img>+<txt> | mme: MME calculation.py |
| mmbench   | MMBench_DEV_EN.tsv (VLMEvalKit: base64 image column, circular copies) | circular: VLMEvalKit CircularEval            |
| scienceqa | problems.json, images/test/<pid>/image.png (image questions only)    | scienceqa: LLaVA-1.5 eval_science_qa.py      |
| seed      | SEED-Bench.json + SEED-Bench-image/, or SEED-Bench_v2*.json + cc3m-image/, SEED-Bench-2-image/ by data_source (one-image questions) | mcq: VLMEvalKit vanilla (can_infer) |
| mmstar    | MMStar.tsv (options in the question, or VLMEvalKit's A-D columns)    | mcq: VLMEvalKit vanilla (can_infer)          |
| mvbench   | json/<task>.json, video/<task's directory>/ (16 frames, as its loader) | mvbench: MVBench check_ans                 |
| video_mme | videomme/*.parquet, data/<videoID>.mp4 (16 frames, uniform)           | video_mme: eval_your_results.py              |
| jsonl     | <name>.jsonl + media (tokcomp_jax.data.jsonl_vqa's format)           | exact / choice                               |
"""

from __future__ import annotations

import base64
import csv
import io
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path

from tokcomp_jax.data.jsonl_vqa import parse_line
from tokcomp_jax.eval.metrics import MME_COGNITION, MME_PERCEPTION
from tokcomp_jax.eval.samples import SHORT_ANSWER, EvalSample, VideoClip, choice_prompt
from tokcomp_jax.files import read_utf8

MME_CATEGORIES = frozenset(MME_PERCEPTION + MME_COGNITION)

LETTERS = "ABCDEFGHIJ"


def _json(path: Path):
    if not path.is_file():
        raise ValueError(f"missing benchmark file {path}")
    try:
        return json.loads(read_utf8(path))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from None


def _field(record: dict, key: str, where: str):
    if key not in record:
        raise ValueError(f"{where}: missing field {key!r}")
    return record[key]


def _tsv(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        raise ValueError(f"missing benchmark file {path}")
    csv.field_size_limit(sys.maxsize)  # base64 images are long fields
    return list(csv.DictReader(io.StringIO(read_utf8(path), newline=""), delimiter="\t"))


def read_gqa(data_dir: Path, split: str = "testdev_balanced") -> list[EvalSample]:
    """Scored as LLaVA's convert_gqa_for_eval.py + GQA's eval.py: `reply.rstrip('.').lower()` equal to
    the answer ("two" is not "2", "A camera" is not "camera")."""
    path = data_dir / "questions" / f"{split}_questions.json"
    samples = []
    for qid, record in _json(path).items():
        where = f"{path}: question {qid}"
        samples.append(
            EvalSample(
                benchmark="gqa", sample_id=str(qid), prompt=f"{_field(record, 'question', where)}\n{SHORT_ANSWER}",
                answers=(_field(record, "answer", where),), metric="gqa",
                images=(data_dir / "images" / f"{_field(record, 'imageId', where)}.jpg",),
                category=record.get("types", {}).get("structural", ""),
            )
        )  # fmt: skip
    return samples


def read_textvqa(data_dir: Path, split: str = "val") -> list[EvalSample]:
    path = data_dir / f"TextVQA_0.5.1_{split}.json"
    samples = []
    for index, record in enumerate(_field(_json(path), "data", str(path))):
        where = f"{path}: data[{index}]"
        samples.append(
            EvalSample(
                benchmark="textvqa", sample_id=str(_field(record, "question_id", where)),
                prompt=f"{_field(record, 'question', where)}\n{SHORT_ANSWER}",
                answers=tuple(_field(record, "answers", where)), metric="vqa",
                images=(data_dir / "train_images" / f"{_field(record, 'image_id', where)}.jpg",),
            )
        )  # fmt: skip
    return samples


def read_pope(data_dir: Path, splits: tuple[str, ...] = ("random", "popular", "adversarial")) -> list[EvalSample]:
    """Scored as AoiDragon/POPE evaluate.py: a reply is "no" if its first sentence holds the word No,
    not or no, else "yes"; F1 per split (the category), the headline their mean (metrics.pope_scores)."""
    samples = []
    for split in splits:
        path = data_dir / f"coco_pope_{split}.json"
        if not path.is_file():
            raise ValueError(f"missing benchmark file {path}")
        for line_number, line in enumerate(read_utf8(path).splitlines(), 1):
            if not line.strip():
                continue
            where = f"{path}:{line_number}"
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(f"{where}: not valid JSON ({err})") from None
            samples.append(
                EvalSample(
                    benchmark="pope", sample_id=f"{split}/{_field(record, 'question_id', where)}",
                    prompt=f"{_field(record, 'text', where)}\n{SHORT_ANSWER}",
                    answers=(_field(record, "label", where).strip().lower(),), metric="pope",
                    images=(data_dir / "val2014" / _field(record, "image", where),), category=split,
                )
            )  # fmt: skip
    return samples


def _mme_root(data_dir: Path) -> Path:
    """The directory holding MME's category directories: data_dir, or its one subdirectory that does
    (an archive unpacked one level deeper)."""
    names = lambda d: {p.name for p in d.iterdir() if p.is_dir()}  # noqa: E731
    if not data_dir.is_dir():
        raise ValueError(f"missing benchmark directory {data_dir}")
    if names(data_dir) & MME_CATEGORIES:
        return data_dir
    inner = [d for d in data_dir.iterdir() if d.is_dir() and names(d) & MME_CATEGORIES]
    if len(inner) == 1:
        return inner[0]
    raise ValueError(f"no MME category directories (existence, count, ..., OCR) under {data_dir} or one level below")


def read_mme(data_dir: Path) -> list[EvalSample]:
    """Every category directory: question files `<image stem>.txt` of "question<TAB>answer" lines,
    beside the images or in questions_answers_YN/ with the images in images/. Scored as MME's
    eval_tool/calculation.py: the lowercased reply's first 4 characters decide yes / no / other."""
    data_dir = _mme_root(data_dir)
    categories = sorted(p for p in data_dir.iterdir() if p.is_dir())
    samples = []
    for category in categories:
        nested = (category / "questions_answers_YN").is_dir()
        questions = category / "questions_answers_YN" if nested else category
        images = category / "images" if nested else category
        if not any(questions.glob("*.txt")):
            raise ValueError(f"{category}: no question files (*.txt)")
        for text_file in sorted(questions.glob("*.txt")):
            image = next((p for p in sorted(images.glob(f"{text_file.stem}.*")) if p.suffix != ".txt"), None)
            if image is None:
                raise ValueError(f"{text_file}: no image {text_file.stem}.* in {images}")
            for line_number, line in enumerate(read_utf8(text_file).splitlines(), 1):
                if not line.strip():
                    continue
                question, sep, answer = line.rpartition("\t")
                if not sep:
                    raise ValueError(f"{text_file}:{line_number}: expected 'question<TAB>answer'")
                samples.append(
                    EvalSample(
                        benchmark="mme", sample_id=f"{category.name}/{text_file.stem}/{line_number}",
                        prompt=question.strip(), answers=(answer.strip().lower(),), metric="mme",
                        images=(image,), category=category.name, group=text_file.stem,
                    )
                )  # fmt: skip
    return samples


def _options(record: dict) -> list[tuple[str, str]]:
    """The non-empty option columns A, B, C, ... of a VLMEvalKit row."""
    return [(letter, record[letter]) for letter in LETTERS if record.get(letter, "").strip() not in ("", "nan")]


def _base64_image(record: dict, where: str) -> bytes:
    try:
        return base64.b64decode(_field(record, "image", where), validate=True)
    except ValueError:
        raise ValueError(f"{where}: the image column is not base64") from None


def _resolve_image_references(rows: list[dict], path: Path) -> None:
    """VLMEvalKit's convention: an `image` of at most 64 characters is another row's index, whose
    image it shares (ImageBaseDataset.__init__); resolved one level deep, in place."""
    images = {row.get("index", ""): row.get("image", "") for row in rows}
    for number, row in enumerate(rows, 2):
        image = row.get("image", "")
        if 0 < len(image) <= 64:
            if len(images.get(image, "")) <= 64:
                raise ValueError(f"{path}:{number}: image refers to row index {image!r}, which holds no image")
            row["image"] = images[image]


def read_mmbench(data_dir: Path, split: str = "MMBench_DEV_EN") -> list[EvalSample]:
    """VLMEvalKit's MMBench TSV, circular copies included (index = question + k * 1e6). Scored as
    VLMEvalKit (multiple_choice.py mcq_circular_eval with exact matching, can_infer): a question is
    right only if every copy is; the single-pass score is `vanilla` in the details."""
    path = data_dir / f"{split}.tsv"
    rows = _tsv(path)
    _resolve_image_references(rows, path)
    samples = []
    for row_number, record in enumerate(rows, 2):
        where = f"{path}:{row_number}"
        options = _options(record)
        hint = record.get("hint", "")
        index = _field(record, "index", where)
        if not index.strip().isdigit():
            raise ValueError(f"{where}: index {index!r} is not a number")
        samples.append(
            EvalSample(
                benchmark="mmbench", sample_id=str(index),
                prompt=choice_prompt(_field(record, "question", where), options, "" if hint == "nan" else hint),
                answers=(_field(record, "answer", where).strip(),), metric="circular",
                images=(_base64_image(record, where),), options=tuple(options), category=record.get("category", ""),
                group=str(int(index) % 1_000_000),
            )
        )  # fmt: skip
    return samples


def read_scienceqa(data_dir: Path, split: str = "test") -> list[EvalSample]:
    path = data_dir / "problems.json"
    samples = []
    for pid, record in _json(path).items():
        if record.get("split") != split or not record.get("image"):
            continue
        where = f"{path}: problem {pid}"
        options = list(zip(LETTERS, _field(record, "choices", where), strict=False))
        answer = _field(record, "answer", where)
        if not 0 <= answer < len(options):
            raise ValueError(f"{where}: answer index {answer} outside its {len(options)} choices")
        samples.append(
            EvalSample(
                benchmark="scienceqa", sample_id=str(pid),
                prompt=choice_prompt(_field(record, "question", where), options, record.get("hint", "")),
                answers=(LETTERS[answer],), metric="scienceqa",
                images=(data_dir / "images" / split / pid / record["image"],), options=tuple(options),
                category=record.get("subject", ""),
            )
        )  # fmt: skip
    return samples


SEED_IMAGE_TYPES = ("image", "Single Image")  # SEED-Bench's and SEED-Bench-2's data_type of one-image questions


def read_seed(data_dir: Path) -> list[EvalSample]:
    """SEED-Bench or SEED-Bench-2 (SEED-Bench.json or SEED-Bench_v2_level1_2_3.json): the one-image
    questions, each image in its record's folder (_seed_image). Scored as VLMEvalKit's SEEDBench_IMG /
    SEEDBench2 (vanilla MCQ, can_infer); the benchmark's own eval.py ranks the options by likelihood
    instead, which a generated reply cannot."""
    candidates = [data_dir / "SEED-Bench.json", *sorted(data_dir.glob("SEED-Bench_v2*.json"))]
    path = next((p for p in candidates if p.is_file()), candidates[0])
    data = _json(path)
    type_names = {number: name for name, number in data.get("question_type", {}).items()}
    samples = []
    for index, record in enumerate(_field(data, "questions", str(path))):
        if record.get("data_type", "image") not in SEED_IMAGE_TYPES:
            continue
        where = f"{path}: questions[{index}]"
        options = [(letter, _field(record, f"choice_{letter.lower()}", where)) for letter in "ABCD"]
        samples.append(
            EvalSample(
                benchmark="seed", sample_id=str(_field(record, "question_id", where)),
                prompt=choice_prompt(_field(record, "question", where), options),
                answers=(_field(record, "answer", where).strip(),), metric="mcq",
                images=(_seed_image(data_dir, record, version_2=path.name != "SEED-Bench.json", where=where),),
                options=tuple(options),
                category=type_names.get(record.get("question_type_id"), str(record.get("question_type_id", ""))),
            )
        )  # fmt: skip
    return samples


# SEED-Bench-2's image folder, chosen per record by its data_source as AILab-CVC/SEED-Bench
# SEED-Bench-2/eval.py run_inference does (cc3m_dir for "cc3m", seed_bench_v2_dir for "SEED-Bench v2",
# any other value "The data type is not valid."); the folders named as DATASET.md's archives unpack:
# cc3m-image.zip (dimensions 1-9) and SEED-Bench-2-image.zip.* (the others).
SEED2_IMAGE_DIRS = {"cc3m": "cc3m-image", "SEED-Bench v2": "SEED-Bench-2-image"}


def _seed_image(data_dir: Path, record: dict, version_2: bool, where: str) -> Path:
    """SEED-Bench (v1) records carry no data_source: their images are in SEED-Bench-image/ (eval.py's
    cc3m_dir); SEED-Bench-2's are in the folder of their data_source."""
    data_id = _field(record, "data_id", where)
    if not version_2:
        return data_dir / "SEED-Bench-image" / data_id
    source = _field(record, "data_source", where)
    if source not in SEED2_IMAGE_DIRS:
        raise ValueError(f"{where}: data_source {source!r} is none of {sorted(SEED2_IMAGE_DIRS)}")
    return data_dir / SEED2_IMAGE_DIRS[source] / data_id


_INLINE_OPTION = re.compile(r"(?:^|,?\s+)([A-F])[:.]\s+")  # splits "A: x, B: y" at each letter


def read_mmstar(data_dir: Path) -> list[EvalSample]:
    """MMStar.tsv in either layout: the release's (options inside the question, "...\\nOptions: A: x,
    B: y, C: z, D: w") or VLMEvalKit's (A-D columns). Scored as VLMEvalKit's vanilla MCQ (can_infer);
    MMStar's own MMStar_eval takes the reply's first character instead."""
    path = data_dir / "MMStar.tsv"
    samples = []
    for row_number, record in enumerate(_tsv(path), 2):
        where = f"{path}:{row_number}"
        question = _field(record, "question", where)
        stem, _, listed = question.partition("Options:")
        if "A" in record:  # VLMEvalKit's columns
            stem, options = question, _options(record)
        else:
            parts = _INLINE_OPTION.split(listed.strip())[1:]  # [letter, text, letter, text, ...]
            options = [(letter, text.strip()) for letter, text in zip(parts[::2], parts[1::2], strict=True)]
        if len(options) < 2:
            raise ValueError(f"{where}: cannot find the options (expected 'Options: A: ..., B: ...')")
        samples.append(
            EvalSample(
                benchmark="mmstar", sample_id=str(_field(record, "index", where)),
                prompt=choice_prompt(stem, options),
                answers=(_field(record, "answer", where).strip(),), metric="mcq",
                images=(_base64_image(record, where),), options=tuple(options), category=record.get("category", ""),
            )
        )  # fmt: skip
    return samples


# MVBench's 20 tasks: json file -> (video directory under video/, frames-directory task, has start/end).
MVBENCH_TASKS = {
    "action_sequence": ("star/Charades_v1_480", False, True),
    "action_prediction": ("star/Charades_v1_480", False, True),
    "action_antonym": ("ssv2_video", False, False),
    "fine_grained_action": ("Moments_in_Time_Raw/videos", False, False),
    "unexpected_action": ("FunQA_test/test", False, False),
    "object_existence": ("clevrer/video_validation", False, False),
    "object_interaction": ("star/Charades_v1_480", False, True),
    "object_shuffle": ("perception/videos", False, False),
    "moving_direction": ("clevrer/video_validation", False, False),
    "action_localization": ("sta/sta_video", False, True),
    "scene_transition": ("scene_qa/video", False, False),
    "action_count": ("perception/videos", False, False),
    "moving_count": ("clevrer/video_validation", False, False),
    "moving_attribute": ("clevrer/video_validation", False, False),
    "state_change": ("perception/videos", False, False),
    "fine_grained_pose": ("nturgbd", False, False),
    "character_order": ("perception/videos", False, False),
    "egocentric_navigation": ("vlnqa", False, False),
    "episodic_reasoning": ("tvqa/frames_fps3_hq", True, True),
    "counterfactual_inference": ("clevrer/video_validation", False, False),
}


def read_mvbench(data_dir: Path, num_frames: int = 16) -> list[EvalSample]:
    """The tasks whose json/<task>.json is present (at least one); videos under video/<directory>."""
    present = [task for task in MVBENCH_TASKS if (data_dir / "json" / f"{task}.json").is_file()]
    if not present:
        raise ValueError(f"missing benchmark files: no MVBench task json under {data_dir / 'json'}")
    samples = []
    for task in present:
        directory, frames, bounded = MVBENCH_TASKS[task]
        path = data_dir / "json" / f"{task}.json"
        for index, record in enumerate(_json(path)):
            where = f"{path}[{index}]"
            candidates = _field(record, "candidates", where)
            options = list(zip(LETTERS, candidates, strict=False))
            answer = _field(record, "answer", where)
            if answer not in candidates:
                raise ValueError(f"{where}: answer {answer!r} is not one of the candidates")
            clip = VideoClip(
                data_dir / "video" / directory / _field(record, "video", where), num_frames,
                start=record.get("start") if bounded else None, end=record.get("end") if bounded else None,
            )  # fmt: skip
            if frames != clip.path.is_dir() and clip.path.exists():
                raise ValueError(f"{where}: {clip.path} should be a {'frame directory' if frames else 'video file'}")
            samples.append(
                EvalSample(
                    benchmark="mvbench", sample_id=f"{task}/{index}",
                    prompt=choice_prompt(_field(record, "question", where), options),
                    answers=(LETTERS[candidates.index(answer)],), metric="mvbench", video=clip,
                    options=tuple(options), category=task,
                )
            )  # fmt: skip
    return samples


VIDEO_MME_PROMPT = (
    "Select the best answer to the following multiple-choice question based on the video. "
    "Respond with only the letter (A, B, C, or D) of the correct option."
)


def read_video_mme(data_dir: Path, num_frames: int = 16) -> list[EvalSample]:
    """Questions from videomme/*.parquet (the release's file), videos data/<videoID>.mp4; reported
    per duration (short / medium / long). Scored as eval_your_results.py (extract_characters_regex:
    the first capital A-D; replies without one are left out of the accuracy, their count in `answered`)."""
    import pyarrow.parquet as pq

    files = sorted((data_dir / "videomme").glob("*.parquet"))
    if not files:
        raise ValueError(f"missing benchmark file: no parquet under {data_dir / 'videomme'}")
    samples = []
    for path in files:
        for index, record in enumerate(pq.read_table(path).to_pylist()):
            where = f"{path}: row {index}"
            options = []
            for option in _field(record, "options", where):
                letter, sep, text = option.partition(".")
                if not sep or letter.strip() not in LETTERS:
                    raise ValueError(f"{where}: option {option!r} is not 'X. text'")
                options.append((letter.strip(), text.strip()))
            listed = "\n".join(f"{letter}. {text}" for letter, text in options)
            samples.append(
                EvalSample(
                    benchmark="video_mme", sample_id=str(_field(record, "question_id", where)),
                    prompt=f"{VIDEO_MME_PROMPT}\n{_field(record, 'question', where)}\n{listed}\nThe best answer is:",
                    answers=(_field(record, "answer", where).strip(),), metric="video_mme",
                    video=VideoClip(data_dir / "data" / f"{_field(record, 'videoID', where)}.mp4", num_frames),
                    options=tuple(options), category=str(record.get("duration", "")),
                )
            )  # fmt: skip
    return samples


def read_jsonl(data_dir: Path) -> list[EvalSample]:
    """Your own benchmark in the generic jsonl format (tokcomp_jax.data.jsonl_vqa): `data_dir` is the
    jsonl file itself or a directory holding `test.jsonl`; media paths are relative to the file.
    With `options` it is multiple choice (the answer may be the option's text or its letter);
    otherwise replies are scored by normalised exact match. An optional `category` is kept."""
    path = data_dir if data_dir.suffix == ".jsonl" else data_dir / "test.jsonl"
    if not path.is_file():
        raise ValueError(f"missing benchmark file {path}")
    samples = []
    for line_number, line in enumerate(read_utf8(path).splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path}:{line_number}"
        fields = parse_line(line, path.parent, where)
        options = list(zip(LETTERS, fields["options"], strict=False))
        answers = tuple(fields["answers"])
        if options:
            by_text = {text: letter for letter, text in options}
            answers = (by_text.get(answers[0], answers[0]),)
            if answers[0] not in dict(options):
                raise ValueError(f"{where}: answer {fields['answers'][0]!r} is neither an option nor its letter")
        samples.append(
            EvalSample(
                benchmark=path.stem, sample_id=fields["sample_id"],
                prompt=choice_prompt(fields["question"], options) if options else fields["question"],
                answers=answers, metric="choice" if options else "exact", images=tuple(fields["images"]),
                options=tuple(options), category=str(json.loads(line).get("category", "")),
            )
        )  # fmt: skip
    return samples


ADAPTERS: dict[str, Callable[[Path], list[EvalSample]]] = {
    "gqa": read_gqa,
    "textvqa": read_textvqa,
    "pope": read_pope,
    "mme": read_mme,
    "mmbench": read_mmbench,
    "scienceqa": read_scienceqa,
    "seed": read_seed,
    "mmstar": read_mmstar,
    "mvbench": read_mvbench,
    "video_mme": read_video_mme,
    "jsonl": read_jsonl,
}


def read_benchmark(name: str, data_dir: str | Path) -> list[EvalSample]:
    if name not in ADAPTERS:
        raise ValueError(f"unknown benchmark {name!r}; known: {sorted(ADAPTERS)}")
    samples = ADAPTERS[name](Path(data_dir))
    if not samples:
        raise ValueError(f"{name}: no samples found under {data_dir}")
    return samples
