"""Every benchmark adapter on a small fixture in the benchmark's published format, written here."""

from __future__ import annotations

import base64
import csv
import io
import json

import numpy as np
import pytest
from PIL import Image

from tokcomp_jax.eval.adapters import read_benchmark
from tokcomp_jax.eval.samples import LETTER_ANSWER, VideoClip, load_image, load_video, load_video_and_rate


def _png(path=None, colour=(200, 30, 30), size=(8, 12)) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.full((*size, 3), colour, np.uint8)).save(buffer, format="PNG")
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(buffer.getvalue())
    return buffer.getvalue()


def _tsv(path, header, rows):
    """As pandas' to_csv(sep="\t") writes it (fields with newlines quoted)."""
    with path.open("w", newline="") as handle:
        csv.writer(handle, delimiter="\t").writerows([header, *rows])


def write_gqa(root):
    (root / "questions").mkdir()
    questions = {
        "201": {"imageId": "n1", "question": "Is the cup red?", "answer": "yes", "types": {"structural": "verify"}},
        "202": {
            "imageId": "n2",
            "question": "What is on the table?",
            "answer": "cup",
            "types": {"structural": "query"},
        },
    }
    (root / "questions" / "testdev_balanced_questions.json").write_text(json.dumps(questions))
    for name in ("n1", "n2"):
        _png(root / "images" / f"{name}.jpg")
    return {"count": 2, "first_answers": ("yes",), "metric": "gqa", "category": "verify"}


def write_textvqa(root):
    data = [{"question_id": 7, "image_id": "abc", "question": "What brand?", "answers": ["nike"] * 7 + ["adidas"] * 3}]
    (root / "TextVQA_0.5.1_val.json").write_text(json.dumps({"dataset_version": "0.5.1", "data": data}))
    _png(root / "train_images" / "abc.jpg")
    return {"count": 1, "first_answers": tuple(["nike"] * 7 + ["adidas"] * 3), "metric": "vqa", "category": ""}


def write_pope(root):
    for split in ("random", "popular", "adversarial"):
        lines = [
            {"question_id": 1, "image": "COCO_val2014_000000000001.jpg", "text": "Is there a dog?", "label": "yes"},
            {"question_id": 2, "image": "COCO_val2014_000000000001.jpg", "text": "Is there a car?", "label": "no"},
        ]
        (root / f"coco_pope_{split}.json").write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    _png(root / "val2014" / "COCO_val2014_000000000001.jpg")
    return {"count": 6, "first_answers": ("yes",), "metric": "pope", "category": "random"}


def write_mme(root):
    # One category with images beside the questions, one in the nested layout.
    _png(root / "existence" / "000000006040.jpg")
    (root / "existence" / "000000006040.txt").write_text(
        "Is there a train in this image? Please answer yes or no.\tYes\n"
        "Is there a bed in this image? Please answer yes or no.\tNo\n"
    )
    _png(root / "artwork" / "images" / "10002.jpg")
    (root / "artwork" / "questions_answers_YN").mkdir(parents=True)
    (root / "artwork" / "questions_answers_YN" / "10002.txt").write_text(
        "Is this artwork by Titian? Please answer yes or no.\tYes\nIs this artwork by Monet? Please answer yes or no.\tNo\n"
    )
    return {"count": 4, "first_answers": ("yes",), "metric": "mme", "category": "artwork"}


def write_mmbench(root):
    image = base64.b64encode(_png()).decode()
    header = ["index", "question", "hint", "A", "B", "C", "D", "answer", "category", "image"]
    rows = [
        [0, "What colour is the square?", "nan", "red", "green", "blue", "nan", "A", "attribute", image],
        [1, "Which is larger?", "Look carefully.", "left", "right", "nan", "nan", "B", "spatial", image],
    ]
    _tsv(root / "MMBench_DEV_EN.tsv", header, rows)
    return {"count": 2, "first_answers": ("A",), "metric": "circular", "category": "attribute", "options": 3}


def write_scienceqa(root):
    problems = {
        "5": {"question": "Which is a mammal?", "choices": ["frog", "whale"], "answer": 1, "hint": "",
              "image": "image.png", "split": "test", "subject": "natural science"},
        "6": {"question": "No picture here", "choices": ["a", "b"], "answer": 0, "hint": "", "image": None,
              "split": "test", "subject": "language science"},
        "7": {"question": "A training one", "choices": ["a", "b"], "answer": 0, "hint": "", "image": "image.png",
              "split": "train", "subject": "natural science"},
    }  # fmt: skip
    (root / "problems.json").write_text(json.dumps(problems))
    _png(root / "images" / "test" / "5" / "image.png")
    return {"count": 1, "first_answers": ("B",), "metric": "scienceqa", "category": "natural science", "options": 2}


def write_seed(root):
    data = {
        "question_type": {"Scene Understanding": 1, "Action Recognition": 10},
        "questions": [
            {"question_id": "101", "question": "Where is it?", "choice_a": "beach", "choice_b": "city",
             "choice_c": "forest", "choice_d": "desert", "answer": "C", "data_id": "1454426_2591111986",
             "data_type": "image", "question_type_id": 1},
            {"question_id": "v1", "question": "What happens?", "choice_a": "a", "choice_b": "b", "choice_c": "c",
             "choice_d": "d", "answer": "A", "data_id": "clip.mp4", "data_type": "video", "question_type_id": 10},
        ],
    }  # fmt: skip
    (root / "SEED-Bench.json").write_text(json.dumps(data))
    _png(root / "SEED-Bench-image" / "1454426_2591111986")
    return {"count": 1, "first_answers": ("C",), "metric": "mcq", "category": "Scene Understanding", "options": 4}


def write_mmstar(root):
    image = base64.b64encode(_png()).decode()
    question = "Which option describes the object?\nOptions: A: a round cup, B: a square box, C: a tall lamp, D: a dog"
    _tsv(root / "MMStar.tsv", ["index", "question", "answer", "category", "l2_category", "image"],
         [[0, question, "B", "coarse perception", "image scene", image]])  # fmt: skip
    return {"count": 1, "first_answers": ("B",), "metric": "mcq", "category": "coarse perception", "options": 4}


def _mp4(path, frames=24, fps=8):
    """A small H.264 video whose frame i is filled with grey level 10 * i."""
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(np.full((32, 32, 3), 10 * i, np.uint8), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode())


def write_mvbench(root):
    (root / "json").mkdir()
    (root / "json" / "object_shuffle.json").write_text(json.dumps([
        {"video": "clip.mp4", "question": "Where is the ball?", "candidates": ["left", "middle", "right"],
         "answer": "right"},
    ]))  # fmt: skip
    _mp4(root / "video" / "perception" / "videos" / "clip.mp4")
    (root / "json" / "episodic_reasoning.json").write_text(json.dumps([
        {"video": "show_1", "question": "Who speaks?", "candidates": ["Ann", "Bob"], "answer": "Ann",
         "start": 1.0, "end": 3.0},
    ]))  # fmt: skip
    for i in range(15):  # 5 s of frames at 3 fps
        _png(root / "video" / "tvqa" / "frames_fps3_hq" / "show_1" / f"{i:05d}.jpg", colour=(i, i, i), size=(32, 32))
    return {"count": 2, "first_answers": ("C",), "metric": "mvbench", "category": "object_shuffle", "options": 3}


def write_video_mme(root):
    import pyarrow as pa
    import pyarrow.parquet as pq

    (root / "videomme").mkdir()
    table = pa.table({
        "video_id": ["001"], "duration": ["short"], "domain": ["Knowledge"], "sub_category": ["Humanity"],
        "videoID": ["fFjv93ACGo8"], "question_id": ["001-1"], "task_type": ["Counting Problem"],
        "question": ["How many frames are grey?"],
        "options": [["A. One.", "B. Two.", "C. All of them.", "D. None."]], "answer": ["C"],
    })  # fmt: skip
    pq.write_table(table, root / "videomme" / "test-00000-of-00001.parquet")
    _mp4(root / "data" / "fFjv93ACGo8.mp4")
    return {"count": 1, "first_answers": ("C",), "metric": "video_mme", "category": "short", "options": 4}


WRITERS = {
    "gqa": write_gqa, "textvqa": write_textvqa, "pope": write_pope, "mme": write_mme, "mmbench": write_mmbench,
    "scienceqa": write_scienceqa, "seed": write_seed, "mmstar": write_mmstar, "mvbench": write_mvbench,
    "video_mme": write_video_mme,
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(WRITERS))
def test_adapter_reads_the_published_format(tmp_path, name):
    expected = WRITERS[name](tmp_path)
    samples = read_benchmark(name, tmp_path)
    assert len(samples) == expected["count"]
    first = samples[0]
    assert first.benchmark == name and first.metric == expected["metric"]
    assert first.answers == expected["first_answers"]
    assert first.category == expected["category"]
    assert len({s.sample_id for s in samples}) == len(samples)
    if first.video is not None:
        assert load_video(first.video).shape == (16, 32, 32, 3)
    else:
        assert load_image(first.images[0]).shape == (8, 12, 3)
    if expected["metric"] in ("choice", "mcq", "circular", "scienceqa", "mvbench"):
        assert len(first.options) == expected["options"]
        assert first.prompt.endswith(LETTER_ANSWER) and f"{first.options[-1][0]}. " in first.prompt
        assert first.answers[0] in dict(first.options)


def test_mmstar_options_are_parsed_out_of_the_question(tmp_path):
    write_mmstar(tmp_path)
    (sample,) = read_benchmark("mmstar", tmp_path)
    assert dict(sample.options) == {"A": "a round cup", "B": "a square box", "C": "a tall lamp", "D": "a dog"}
    assert "Options:" not in sample.prompt


@pytest.mark.parametrize(
    "break_it,message",
    [
        (lambda root: (root / "TextVQA_0.5.1_val.json").unlink(), "missing benchmark file"),
        (lambda root: (root / "TextVQA_0.5.1_val.json").write_text("{not json"), "not valid JSON"),
        (lambda root: (root / "TextVQA_0.5.1_val.json").write_text('{"data": [{"question_id": 1}]}'), "'question'"),
    ],
)
def test_broken_files_name_the_file_and_the_problem(tmp_path, break_it, message):
    write_textvqa(tmp_path)
    break_it(tmp_path)
    with pytest.raises(ValueError, match=message):
        read_benchmark("textvqa", tmp_path)


def test_unknown_benchmark_and_unreadable_image(tmp_path):
    with pytest.raises(ValueError, match="unknown benchmark"):
        read_benchmark("vqav9", tmp_path)
    (tmp_path / "broken.jpg").write_bytes(b"not an image")
    with pytest.raises(ValueError, match="broken.jpg"):
        load_image(tmp_path / "broken.jpg")


def test_the_rate_of_the_sampled_frames_is_their_count_over_the_span_they_cover(tmp_path):
    """What the Qwen video processors read as the clip's fps (Qwen3-VL's timestamps)."""
    _mp4(tmp_path / "v.mp4", frames=24, fps=8)
    assert load_video_and_rate(VideoClip(tmp_path / "v.mp4", num_frames=4))[1] == pytest.approx(4 / 3)
    assert load_video_and_rate(VideoClip(tmp_path / "v.mp4", num_frames=2, start=1.0, end=2.0))[1] == 2.0
    (tmp_path / "mv").mkdir()
    write_mvbench(tmp_path / "mv")
    episodic = read_benchmark("mvbench", tmp_path / "mv")[1]
    frames, rate = load_video_and_rate(VideoClip(episodic.video.path, num_frames=3, start=1.0, end=3.0, fps=3.0))
    assert len(frames) == 3 and rate == 1.5  # frames 4, 6, 8 of a 3 fps directory: 3 frames over 2 s


def test_video_frames_are_sampled_uniformly_inside_the_clip_bounds(tmp_path):
    _mp4(tmp_path / "v.mp4", frames=24, fps=8)  # frame i is grey 10 * i, at i / 8 seconds
    whole = load_video(VideoClip(tmp_path / "v.mp4", num_frames=4))
    assert [int(round(f.mean() / 10)) for f in whole] == [3, 9, 15, 21]  # segment middles of 24 frames
    bounded = load_video(VideoClip(tmp_path / "v.mp4", num_frames=2, start=1.0, end=2.0))  # frames 8..15
    assert [int(round(f.mean() / 10)) for f in bounded] == [10, 14]
    (tmp_path / "mv").mkdir()
    write_mvbench(tmp_path / "mv")
    episodic = read_benchmark("mvbench", tmp_path / "mv")[1]
    assert (episodic.video.start, episodic.video.end) == (1.0, 3.0)
    frames = load_video(VideoClip(episodic.video.path, num_frames=3, start=1.0, end=3.0))  # frames 3..8 at 3 fps
    assert [int(f.mean()) for f in frames] == [4, 6, 8]
    with pytest.raises(ValueError, match="does not exist"):
        load_video(VideoClip(tmp_path / "missing.mp4"))
