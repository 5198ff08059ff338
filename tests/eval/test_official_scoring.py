"""Each benchmark's score equals its official script's on replies chosen to hit the edge cases of
the official rule; every expected figure is worked out by hand from that rule (tokcomp_jax.eval.official
cites the code followed)."""

from __future__ import annotations

import pytest

from tokcomp_jax.eval import official
from tokcomp_jax.eval.metrics import benchmark_score, normalize_answer, score_reply


def records(metric, rows, options=None):
    """rows: (reply, answer, category, group) -> the eval runner's records, scored."""
    return [{"score": score_reply(metric, reply, [answer], options or {}), "answers": [answer], "category": category,
             "group": group} for reply, answer, category, group in rows]  # fmt: skip


@pytest.mark.parametrize(
    "reply,answer",
    [("Yes, there is a dog.", "yes"), ("No, there is not.", "no"), ("There is no dog.", "no"),
     ("NO", "yes"), ("Not really", "yes"), ("No!", "yes"), ("", "yes"), ("I cannot tell", "yes"),
     ("Yes. There is no cat.", "yes"), ("The dog is not there", "no"), ("no", "no")],
)  # fmt: skip
def test_pope_reply_rule(reply, answer):
    """First sentence, commas removed, split on single spaces, case-sensitive No / not / no."""
    assert official.pope_answer(reply) == answer


def test_pope_headline_is_the_mean_of_the_splits_f1():
    rows = [  # random: tp 2, fp 1, fn 0 -> P 2/3, R 1, F1 0.8; popular: tp 1, fp 0, fn 1 -> F1 2/3
        ("Yes", "yes", "random", ""), ("yes", "yes", "random", ""), ("maybe", "no", "random", ""),
        ("No.", "no", "random", ""),
        ("Yes", "yes", "popular", ""), ("NO", "no", "popular", ""), ("no", "yes", "popular", ""),
        ("No", "no", "popular", ""),
    ]  # fmt: skip
    # popular: "NO" reads as yes (fp), so tp 1, fp 1, fn 1 -> P 1/2, R 1/2, F1 0.5
    result = benchmark_score("pope", records("pope", rows))
    assert result["random/f1"] == pytest.approx(80.0) and result["popular/f1"] == pytest.approx(50.0)
    assert result["score"] == pytest.approx(65.0)
    # pooled: tp 3, fp 2, fn 1 -> P 3/5, R 3/4, F1 2/3
    assert result["pooled/f1"] == pytest.approx(200 / 3)
    assert result["random/yes_ratio"] == pytest.approx(75.0)


@pytest.mark.parametrize(
    "reply,answer",
    [("Yes", "yes"), ("no", "no"), ("Yes, it is.", "yes"), ("No smoking sign", "no"), ("Not at all", "no"),
     ("none", "no"), ('The sign says "no smoking"', "other"), ("the answer is yes", "other"), ("Nope", "no"),
     ("y", "other")],
)  # fmt: skip
def test_mme_reply_rule(reply, answer):
    """The lowercased reply itself, or its first 4 characters: 'yes' there first, then 'no'."""
    assert official.mme_answer(reply) == answer


def test_mme_score_counts_other_as_wrong():
    rows = [("Yes", "yes", "existence", "a"), ("The answer is no", "no", "existence", "a"),
            ("No", "no", "existence", "b"), ("Yes", "yes", "existence", "b")]  # fmt: skip
    # acc 3/4, acc+ 1/2 (image a lost its "other" reply)
    assert benchmark_score("mme", records("mme", rows))["existence"] == pytest.approx(75.0 + 50.0)


@pytest.mark.parametrize(
    "reply,right", [("camera", True), ("Camera.", True), ("A camera", False), ("two", False), ("camera .", False)]
)
def test_gqa_is_exact_after_rstrip_and_lower(reply, right):
    assert score_reply("gqa", reply, ["camera" if "camera" in reply.lower() else "2"], {}) == float(right)


@pytest.mark.parametrize(
    "raw,processed",
    [("dakota,digital", "dakotadigital"), ("it's", "it 's"), ("It'S", "it 's"), ("let's go", "let 's go"),
     ("2,000", "2000"), ("2, 000", "2 000"), ("10,000.5", "10000.5"), ("yes.", "yes"), ("one?", "1"),
     ("what?", "what"), ("hello , world", "hello world"), ("red-white", "red white"), ("red - white", "red white"),
     ("a-b -c", "ab c"), ("U.S.A.", "usa"), ("3.5", "3.5"), ("x..y", "xy"), ("a" + "." * 40, "a" + "." * 8),
     ("Im", "im"), ("dont know", "don't know"), ("The Two dogs", "2 dogs"), ("left\nside", "left side"),
     ("@home", "home"), ("(a) dog", "dog")],
)  # fmt: skip
def test_textvqa_answer_processor(raw, processed):
    """EvalAIAnswerProcessor (facebookresearch/mmf mmf/utils/m4c_evaluators.py @2dc099a; LLaVA's
    llava/eval/m4c_evaluator.py and lmms-eval's _task_utils/vqa_eval_metric.py are copies), worked by
    hand: word_tokenize deletes "," and "?" outright and splits "'s" off before process_punctuation;
    a mark beside a space anywhere is deleted everywhere ("a-b -c"), else it becomes a space; periods
    not before a digit go, at most 32 of them (re.UNICODE passed as `count`); lowercase first, so the
    table's "Im" never matches."""
    assert normalize_answer(raw) == processed


def test_textvqa_score_is_the_leave_one_out_over_processed_answers():
    """TextVQAAccuracyEvaluator (m4c_evaluators.py) / lmms-eval textvqa_process_results: reply and the
    10 answers through the processor, then min(1, matches among the other 9 / 3) averaged. With 3 of
    10 answers "dakota digital": 0.9 for that reply; "dakota,digital" processes to "dakotadigital",
    which no answer is (the comma is deleted, not spaced), so 0.0."""
    answers = ["dakota digital"] * 3 + ["dakota"] * 7
    assert score_reply("vqa", "dakota digital", answers, {}) == pytest.approx(0.9)
    assert score_reply("vqa", "Dakota Digital.", answers, {}) == pytest.approx(0.9)
    assert score_reply("vqa", "dakota,digital", answers, {}) == 0.0
    # "'s" is split on both sides: "it's" and "it 's" are one answer; "its" is another.
    owner = ["it's"] * 2 + ["it 's"] + ["its"] * 7
    assert score_reply("vqa", "it's", owner, {}) == pytest.approx(0.9)
    assert score_reply("vqa", "its", owner, {}) == 1.0
    # "2,000" and "2000" agree; "one?" is "1"; "yes." is "yes"
    assert score_reply("vqa", "2,000", ["2000"] * 10, {}) == 1.0
    assert score_reply("vqa", "one?", ["1"] * 2 + ["one"] + ["2"] * 7, {}) == pytest.approx(0.9)
    assert score_reply("vqa", "yes.", ["yes"] * 10, {}) == 1.0


OPTIONS = {"A": "a cat", "B": "a dog", "C": "a bird", "D": "a fish"}


@pytest.mark.parametrize(
    "reply,letter",
    [("B", "B"), ("(B) a dog", "B"), ("The answer is B.", "B"), ("B is right because a cat is not there", "A"),
     ("a dog", "B"), ("It is a dog, not a cat", "Z"), ("Z", "Z"), ("A or B", "Z"), ("", "Z")],
)  # fmt: skip
def test_vlmevalkit_choice(reply, letter):
    """A lone letter among the last 4 words, else the one option text the reply names, else Z: an early
    "B" is not read, and the reply names "a cat" (A)."""
    assert official.vlmevalkit_choice(reply, OPTIONS) == letter


def test_mmbench_circular_eval():
    """Question 1 has 4 copies, one wrong (the original, index 1); question 2 has 2 copies, both right;
    question 3 one row. vanilla (VLMEvalKit image_mcq.py evaluate_heuristic, vanilla_0: rows with
    index <= 1e6) reads the originals 1, 2, 3: 2 of 3 right; vanilla_all every row: 6 of 7."""
    rows = [("A", "D", "ocr", "1", "1"), ("B", "B", "ocr", "1", "1000001"), ("C", "C", "ocr", "1", "2000001"),
            ("D", "D", "ocr", "1", "3000001"), ("B", "B", "logic", "2", "1000002"), ("C", "C", "logic", "2", "2"),
            ("D", "D", "logic", "3", "3")]  # fmt: skip

    def scored(rows):
        found = records("circular", [row[:4] for row in rows], OPTIONS)
        return [{**record, "sample_id": row[4]} for record, row in zip(found, rows, strict=True)]

    result = benchmark_score("circular", scored(rows))
    assert result["score"] == pytest.approx(200 / 3) and result["questions"] == 3
    assert result["vanilla"] == pytest.approx(200 / 3) and result["vanilla_all"] == pytest.approx(600 / 7)
    assert result["category/ocr"] == 0.0 and result["category/logic"] == 100.0
    always_b = [("B", answer, category, group, index) for _, answer, category, group, index in rows]
    result = benchmark_score("circular", scored(always_b))
    # "B" is right on two copies (1000001, 1000002) and on no original
    assert result["score"] == 0.0 and result["vanilla"] == 0.0 and result["vanilla_all"] == pytest.approx(200 / 7)


def test_mmbench_vanilla_counts_index_1e6_as_an_original():
    """VLMEvalKit's `data['index'] <= 1e6`, as written: question 0's first copy (index 1000000) is read
    with the originals, the second (2000000) is not."""
    rows = [("A", "A", "ocr", "0", "0"), ("B", "A", "ocr", "0", "1000000"), ("B", "B", "ocr", "0", "2000000")]
    found = records("circular", [row[:4] for row in rows], OPTIONS)
    result = benchmark_score("circular", [{**r, "sample_id": row[4]} for r, row in zip(found, rows, strict=True)])
    assert result["vanilla"] == pytest.approx(50.0) and result["vanilla_all"] == pytest.approx(200 / 3)
    assert result["score"] == 0.0


@pytest.mark.parametrize(
    "reply,letter",
    [("B", "B"), ("The best answer is C.", "C"), ("Based on the video", "B"), ("The dog runs", ""),
     ("A dog runs", "A"), ("answer: d", ""), ("(D) a fish", "D"),
     ("it is hard to say what happens in this long clip honestly speaking", "")],
)  # fmt: skip
def test_video_mme_letter(reply, letter):
    """The first capital A-D anywhere after the prefixes are removed ("Based" gives B, as officially)."""
    assert official.video_mme_letter(reply) == letter


def test_video_mme_leaves_unanswered_replies_out():
    rows = [("A", "A", "short", ""), ("The dog runs", "B", "short", ""), ("C", "D", "long", "")]
    result = benchmark_score("video_mme", records("video_mme", rows))
    assert result["score"] == pytest.approx(50.0) and result["answered"] == 2


def test_mvbench_frame_folders_are_read_as_its_loader_reads_them(tmp_path):
    """Frames numbered from 1 (00001.jpg ...): within [1 s, 3 s] at 3 fps the loader's get_index gives
    4, 6, 8; over the whole folder of 15 frames, int(1 + 14/6 + round(14/3 * i)) = 3, 8, 12."""
    import numpy as np
    from PIL import Image

    from tokcomp_jax.eval.samples import VideoClip, frame_numbers, load_video

    for number in range(1, 16):
        Image.fromarray(np.full((8, 8, 3), number, np.uint8)).save(tmp_path / f"{number:05d}.jpg", quality=100)
    assert frame_numbers(1.0, 3.0, 3.0, 15, 3) == [4, 6, 8] and frame_numbers(None, None, 3.0, 15, 3) == [3, 8, 12]
    bounded = load_video(VideoClip(tmp_path, num_frames=3, start=1.0, end=3.0, fps=3.0))
    assert [round(float(frame.mean())) for frame in bounded] == [4, 6, 8]
    whole = load_video(VideoClip(tmp_path, num_frames=3, fps=3.0))
    assert [round(float(frame.mean())) for frame in whole] == [3, 8, 12]


@pytest.mark.parametrize(
    "reply,letter",
    [("B", "B"), ("B. a dog", "B"), ("B.", None), (" B", None), ("b", None), ("The answer is C.", "C"),
     ("The answer is C", None), ("The answer is A. The answer is B.", None), ("So the answer is A, not B", None), ("Hence The answer is A, not B", "A"), ("E", None), ("(B)", None),
     ("B) a dog", None), ("", None)],
)  # fmt: skip
def test_scienceqa_letter(reply, letter):
    """LLaVA-1.5: a bare letter, "X. " at the start, or exactly one "The answer is X" + any character;
    "E" is past these four choices, and "The answer is C" lacks the character the regex requires."""
    assert official.scienceqa_letter(reply, "ABCD") == letter


def test_scienceqa_accuracy():
    rows = [("B", "B", "natural science", ""), ("B.", "B", "natural science", ""), ("C. a bird", "C", "social", "")]
    result = benchmark_score("scienceqa", records("scienceqa", rows, OPTIONS))
    assert result["score"] == pytest.approx(200 / 3)


@pytest.mark.parametrize(
    "reply,right",
    [("A", True), ("(A) a cat", True), ("A) a cat", True), ("a.", True), ("A. a cat", True), ("", True),
     ("B", False), ("(B) a dog", False), ("Answer: A", False), ("The answer is A", False), (" A\nbecause", True),
     ("AB", False)],
)  # fmt: skip
def test_mvbench_check_ans(reply, right):
    """Answer A, gt "(A) a cat": "(" + the reply's first line; its first word without dots must lie in
    "(a)" or contain it. "" gives "(", a substring of "(a)": right, as in the official notebook."""
    assert official.mvbench_correct(reply, "A") is right
