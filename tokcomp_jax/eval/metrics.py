"""Benchmark metrics: VQA accuracy with the standard answer normaliser, multiple-choice letters,
POPE's per-split F1, the MME score, MMBench's CircularEval; each benchmark's reply parsing is its
official script's (tokcomp_jax.eval.official).

The normaliser is EvalAI's answer processor, the one TextVQA's published numbers come from
(punctuation, digits, articles, contractions), so TextVQA numbers compare with published ones.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Sequence

from tokcomp_jax.eval import official

# EvalAI's answer processor, as TextVQA is scored: facebookresearch/mmf mmf/utils/m4c_evaluators.py,
# class EvalAIAnswerProcessor (last changed at 2dc099a, blob 1be4fc7), copied verbatim by LLaVA's
# llava/eval/m4c_evaluator.py (eval_textvqa.py) and lmms-eval's lmms_eval/tasks/_task_utils/vqa_eval_metric.py
# (textvqa_process_results); its PUNCTUATIONS, COMMA_STRIP, PERIOD_STRIP, NUMBER_MAP, ARTICLES, CONTRACTIONS.
_PUNCTUATION = (
    ";",
    "/",
    "[",
    "]",
    '"',
    "{",
    "}",
    "(",
    ")",
    "=",
    "+",
    "\\",
    "_",
    "-",
    ">",
    "<",
    "@",
    "`",
    ",",
    "?",
    "!",
)
_COMMA_STRIP = re.compile(r"(?<=\d)(\,)+(?=\d)")
# `(?!<=\d)` is a lookahead (the lookbehind was meant): every period not followed by a digit matches.
_PERIOD_STRIP = re.compile(r"(?!<=\d)(\.)(?!\d)")
# process_punctuation calls PERIOD_STRIP.sub("", out_text, re.UNICODE): the flag lands in `count`.
_PERIOD_STRIP_COUNT = int(re.UNICODE)  # 32: the first 32 such periods are deleted, the rest kept
_NUMBER_WORDS = {
    "none": "0", "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4",
    "five": "5", "six": "6", "seven": "7", "eight": "8", "nine": "9", "ten": "10",
}  # fmt: skip
_ARTICLES = frozenset({"a", "an", "the"})
# Its contraction table, keys as written (the capitalised ones never match: the text is lowercased first).
_CONTRACTIONS = {
    "aint": "ain't", "arent": "aren't", "cant": "can't", "couldve": "could've", "couldnt": "couldn't",
    "couldn'tve": "couldn't've", "couldnt've": "couldn't've", "didnt": "didn't", "doesnt": "doesn't",
    "dont": "don't", "hadnt": "hadn't", "hadnt've": "hadn't've", "hadn'tve": "hadn't've", "hasnt": "hasn't",
    "havent": "haven't", "hed": "he'd", "hed've": "he'd've", "he'dve": "he'd've", "hes": "he's", "howd": "how'd",
    "howll": "how'll", "hows": "how's", "Id've": "I'd've", "I'dve": "I'd've", "Im": "I'm", "Ive": "I've",
    "isnt": "isn't", "itd": "it'd", "itd've": "it'd've", "it'dve": "it'd've", "itll": "it'll", "let's": "let's",
    "maam": "ma'am",
    "mightnt": "mightn't", "mightnt've": "mightn't've", "mightn'tve": "mightn't've", "mightve": "might've",
    "mustnt": "mustn't", "mustve": "must've", "neednt": "needn't", "notve": "not've", "oclock": "o'clock",
    "oughtnt": "oughtn't", "ow's'at": "'ow's'at", "'ows'at": "'ow's'at", "'ow'sat": "'ow's'at", "shant": "shan't",
    "shed've": "she'd've", "she'dve": "she'd've", "she's": "she's", "shouldve": "should've", "shouldnt": "shouldn't",
    "shouldnt've": "shouldn't've", "shouldn'tve": "shouldn't've", "somebody'd": "somebodyd",
    "somebodyd've": "somebody'd've", "somebody'dve": "somebody'd've", "somebodyll": "somebody'll",
    "somebodys": "somebody's", "someoned": "someone'd", "someoned've": "someone'd've",
    "someone'dve": "someone'd've", "someonell": "someone'll", "someones": "someone's", "somethingd": "something'd",
    "somethingd've": "something'd've", "something'dve": "something'd've", "somethingll": "something'll",
    "thats": "that's", "thered": "there'd", "thered've": "there'd've", "there'dve": "there'd've",
    "therere": "there're", "theres": "there's", "theyd": "they'd", "theyd've": "they'd've",
    "they'dve": "they'd've", "theyll": "they'll", "theyre": "they're", "theyve": "they've", "twas": "'twas",
    "wasnt": "wasn't", "wed've": "we'd've", "we'dve": "we'd've", "weve": "we've", "werent": "weren't",
    "whatll": "what'll", "whatre": "what're", "whats": "what's", "whatve": "what've", "whens": "when's",
    "whered": "where'd", "wheres": "where's", "whereve": "where've", "whod": "who'd", "whod've": "who'd've",
    "who'dve": "who'd've", "wholl": "who'll", "whos": "who's", "whove": "who've", "whyll": "why'll",
    "whyre": "why're", "whys": "why's", "wont": "won't", "wouldve": "would've", "wouldnt": "wouldn't",
    "wouldnt've": "wouldn't've", "wouldn'tve": "wouldn't've", "yall": "y'all", "yall'll": "y'all'll",
    "y'allll": "y'all'll", "yall'd've": "y'all'd've", "y'alld've": "y'all'd've", "y'all'dve": "y'all'd've",
    "youd": "you'd", "youd've": "you'd've", "you'dve": "you'd've", "youll": "you'll", "youre": "you're",
    "youve": "you've",
}  # fmt: skip


def normalize_answer(text: str) -> str:
    """EvalAIAnswerProcessor.__call__ (mmf m4c_evaluators.py), step for step.

    word_tokenize: lowercase, delete every "," and "?", split "'s" off as a word of its own ("it's" ->
    "it 's"), strip; then newlines and tabs become spaces. process_punctuation: each other mark is
    deleted where the text holds it beside a space, else becomes a space ("red-white" -> "red white",
    "red - white" -> "red  white"); periods not before a digit go (at most 32). process_digit_article:
    number words -> digits, articles dropped, contractions, words joined by single spaces.
    """
    text = text.lower().replace(",", "").replace("?", "").replace("'s", " 's").strip()
    text = text.replace("\n", " ").replace("\t", " ").strip()
    # As written: COMMA_STRIP is searched after word_tokenize deleted the commas, so it never matches.
    digits_comma = _COMMA_STRIP.search(text) is not None
    out = text
    for mark in _PUNCTUATION:  # the test reads the text before any mark was replaced, as the official loop does
        out = out.replace(mark, "" if f"{mark} " in text or f" {mark}" in text or digits_comma else " ")
    out = _PERIOD_STRIP.sub("", out, count=_PERIOD_STRIP_COUNT)
    words = [_NUMBER_WORDS.get(word, word) for word in out.lower().split()]
    return " ".join(_CONTRACTIONS.get(word, word) for word in words if word not in _ARTICLES)


def vqa_accuracy(prediction: str, answers: Sequence[str]) -> float:
    """VQA accuracy in [0, 1]: for each of the human answers, min(1, matches among the others / 3),
    averaged (the official leave-one-out form); a single reference answer is exact match."""
    if not answers:
        raise ValueError("vqa_accuracy needs at least one reference answer")
    predicted = normalize_answer(prediction)
    references = [normalize_answer(answer) for answer in answers]
    if len(references) == 1:
        return float(predicted == references[0])
    scores = [
        min(1.0, sum(other == predicted for j, other in enumerate(references) if j != i) / 3.0)
        for i in range(len(references))
    ]
    return sum(scores) / len(scores)


def exact_match(prediction: str, answers: Sequence[str]) -> float:
    """GQA's metric: the normalised prediction equals a normalised reference answer."""
    return float(normalize_answer(prediction) in {normalize_answer(answer) for answer in answers})


def extract_choice(text: str, options: dict[str, str]) -> str | None:
    """The option letter a free-form reply picks, or None.

    In order: a reply that starts with a letter ("B", "B.", "(B) ...", "B: ..."); "answer is B" /
    "Answer: B"; the one option whose full text the reply contains; a lone letter anywhere.
    """
    letters = "".join(options)
    reply = text.strip()
    if not reply:
        return None
    if match := re.match(rf"^\(?([{letters}])(?:[\).:\s]|$)", reply):
        return match.group(1)
    if match := re.search(rf"answer(?: is|:)\s*\(?([{letters}])\b", reply, flags=re.IGNORECASE):
        return match.group(1)
    lowered = reply.lower()
    named = [letter for letter, option in options.items() if option and option.strip().lower() in lowered]
    if len(named) == 1:
        return named[0]
    alone = set(re.findall(rf"\b([{letters}])\b", reply))
    return alone.pop() if len(alone) == 1 else None


def yes_no_scores(predictions: Iterable[str], labels: Iterable[str]) -> dict[str, float]:
    """POPE's metrics (AoiDragon/POPE evaluate.py) over parsed 'yes' / 'no' replies, "yes" the positive
    class: accuracy, precision, recall, F1 and the share of "yes" replies, in %."""
    pairs = list(zip(predictions, labels, strict=True))
    if not pairs:
        raise ValueError("yes_no_scores needs at least one prediction")
    true_pos = sum(p == "yes" and y == "yes" for p, y in pairs)
    false_pos = sum(p == "yes" and y == "no" for p, y in pairs)
    false_neg = sum(p != "yes" and y == "yes" for p, y in pairs)
    precision = true_pos / max(true_pos + false_pos, 1)
    recall = true_pos / max(true_pos + false_neg, 1)
    return {
        "accuracy": 100.0 * sum(p == y for p, y in pairs) / len(pairs),
        "precision": 100.0 * precision,
        "recall": 100.0 * recall,
        "f1": 100.0 * (2 * precision * recall / max(precision + recall, 1e-12)),
        "yes_ratio": 100.0 * sum(p == "yes" for p, _ in pairs) / len(pairs),
    }


def pope_scores(records: Sequence[dict]) -> dict[str, float]:
    """POPE as published: each split (category) scored on its own; the headline is the mean F1 of the
    splits (LLaVA's eval_pope reports each split; papers average their F1). `pooled/*`: one score
    over every split's questions together (lmms-eval's `pope` task), for comparison."""
    by_split: dict[str, list[dict]] = defaultdict(list)
    for record in records:
        by_split[record["category"]].append(record)
    result = {}
    for split, rows in sorted(by_split.items()):
        scores = yes_no_scores([r["score"] for r in rows], [r["answers"][0] for r in rows])
        result.update({f"{split}/{name}": value for name, value in scores.items()})
    pooled = yes_no_scores([r["score"] for r in records], [r["answers"][0] for r in records])
    result.update({f"pooled/{name}": value for name, value in pooled.items()})
    return {"score": sum(result[f"{s}/f1"] for s in by_split) / len(by_split), **result}


# VLMEvalKit's vanilla accuracy of a circular benchmark scores the original questions only:
# vlmeval/dataset/image_mcq.py ImageMCQDataset.evaluate_heuristic (open-compass/VLMEvalKit @e8e78f0,
# the PRINT_VANILLA block, "Vanilla Circ0 Acc"): without a g_index column, as in MMBench's TSVs,
# `circ0 = data[data['index'] <= 1e6]`, then mcq_vanilla_eval and report_acc on it ('vanilla_0');
# 'vanilla_all' is the same over every row. `<=` as written: index 1000000 (question 0's first
# copy) is counted with the originals.
_CIRCULAR_OFFSET = 1_000_000


def _is_original(record: dict) -> bool:
    return int(record["sample_id"]) <= _CIRCULAR_OFFSET


def circular_scores(records: Sequence[dict]) -> dict[str, float]:
    """MMBench's CircularEval (VLMEvalKit multiple_choice.py mcq_circular_eval): a question (its
    `group`: index % 1e6) counts only if every circular copy of it is right; per category too.
    `vanilla`: the single-pass score over the original questions (index <= 1e6; `sample_id` is the
    index), VLMEvalKit's vanilla_0; `vanilla_all`: every row on its own, its vanilla_all."""
    groups: dict[str, list[dict]] = defaultdict(list)
    for record in records:
        groups[record["group"]].append(record)
    hits = {group: all(r["score"] for r in rows) for group, rows in groups.items()}
    by_category: dict[str, list[bool]] = defaultdict(list)
    for group, rows in groups.items():
        by_category[rows[0]["category"]].append(hits[group])
    originals = [r for r in records if _is_original(r)]
    result = {"score": 100.0 * sum(hits.values()) / len(hits), "questions": float(len(hits)),
              "vanilla_all": 100.0 * sum(r["score"] for r in records) / len(records)}  # fmt: skip
    if originals:
        result["vanilla"] = 100.0 * sum(r["score"] for r in originals) / len(originals)
    if len(by_category) > 1:
        result.update({f"category/{c}": 100.0 * sum(v) / len(v) for c, v in sorted(by_category.items())})
    return result


# MME's two subtask groups; every other category is reported on its own.
MME_PERCEPTION = (
    "existence", "count", "position", "color", "posters", "celebrity", "scene", "landmark", "artwork", "OCR",
)  # fmt: skip
MME_COGNITION = ("commonsense_reasoning", "numerical_calculation", "text_translation", "code_reasoning")


def mme_scores(rows: Iterable[tuple[str, str, str | None, str]]) -> dict[str, float]:
    """MME score from (category, image id, parsed reply, label) rows, two questions per image.

    Per category: accuracy over questions + accuracy+ (images with both questions right), each in
    %, summed (max 200). Returns every category, and `perception` / `cognition` totals.
    """
    by_image: dict[tuple[str, str], list[bool]] = defaultdict(list)
    for category, image, reply, label in rows:
        by_image[category, image].append(reply == label)
    per_category: dict[str, list[list[bool]]] = defaultdict(list)
    for (category, _), answers in by_image.items():
        per_category[category].append(answers)
    scores = {}
    for category, images in per_category.items():
        questions = [right for answers in images for right in answers]
        accuracy = 100.0 * sum(questions) / len(questions)
        accuracy_plus = 100.0 * sum(all(answers) for answers in images) / len(images)
        scores[category] = accuracy + accuracy_plus
    scores["perception"] = sum(scores.get(c, 0.0) for c in MME_PERCEPTION)
    scores["cognition"] = sum(scores.get(c, 0.0) for c in MME_COGNITION)
    return scores


def score_reply(metric: str, reply: str, answers: Sequence[str], options: dict[str, str]) -> float | str | None:
    """One sample's score by its benchmark's official rule (tokcomp_jax.eval.official): in [0, 1] for
    vqa / exact / gqa / choice / mcq / circular / scienceqa / mvbench / video_mme (None: a Video-MME reply with no letter,
    left out as the official script leaves it); the parsed answer for pope and mme, which are
    scored over the whole benchmark (pope_scores, mme_scores)."""
    if metric == "vqa":
        return vqa_accuracy(reply, answers)
    if metric == "exact":
        return exact_match(reply, answers)
    if metric == "gqa":
        return float(official.gqa_prediction(reply) == answers[0])
    if metric == "choice":
        return float(extract_choice(reply, options) == answers[0])
    if metric in ("mcq", "circular"):
        return float(official.vlmevalkit_choice(reply, options) == answers[0])
    if metric == "scienceqa":
        return float(official.scienceqa_letter(reply, "".join(options)) == answers[0])
    if metric == "mvbench":
        return float(official.mvbench_correct(reply, answers[0]))
    if metric == "video_mme":
        letter = official.video_mme_letter(reply)
        return float(letter == answers[0]) if letter else None
    if metric == "pope":
        return official.pope_answer(reply)
    if metric == "mme":
        return official.mme_answer(reply)
    raise ValueError(f"unknown metric {metric!r}")


def benchmark_score(metric: str, records: Sequence[dict]) -> dict[str, float]:
    """The benchmark's headline `score` (and its parts) from per-sample records with `score`,
    `answers`, `category` and `group` fields (tokcomp_jax.eval.runner)."""
    if not records:
        raise ValueError("no records to score")
    if metric == "pope":
        return pope_scores(records)
    if metric == "mme":
        scores = mme_scores((r["category"], r["group"], r["score"], r["answers"][0]) for r in records)
        return {"score": scores["perception"] + scores["cognition"], **scores}
    if metric == "circular":
        return circular_scores(records)
    answered = [r for r in records if r["score"] is not None]  # Video-MME: replies with a letter
    if not answered:
        return {"score": 0.0, "answered": 0.0}
    by_category: dict[str, list[float]] = defaultdict(list)
    for record in answered:
        by_category[record["category"]].append(record["score"])
    result = {"score": 100.0 * sum(r["score"] for r in answered) / len(answered)}
    if len(answered) < len(records):
        result["answered"] = float(len(answered))
    if len(by_category) > 1:
        result.update({f"category/{c}": 100.0 * sum(v) / len(v) for c, v in sorted(by_category.items())})
    return result
