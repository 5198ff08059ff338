"""Each benchmark's official reply parsing, transcribed from the code its published numbers come from.

| function            | follows                                                                                 |
|---------------------|-----------------------------------------------------------------------------------------|
| pope_answer         | AoiDragon/POPE evaluate.py (and LLaVA llava/eval/eval_pope.py eval_pope): the same rule  |
| mme_answer          | MME eval_tool/calculation.py, calculate_metrics.parse_pred_ans (BradyFU/Awesome-Multimodal-Large-Language-Models, Evaluation branch, tools/eval_tool.zip) |
| gqa_prediction      | LLaVA scripts/convert_gqa_for_eval.py before GQA's eval.py (exact match against the answer) |
| vlmevalkit_choice   | VLMEvalKit vlmeval/utils/matching_util.py can_infer (can_infer_option, can_infer_text)   |
| video_mme_letter    | Video-MME eval_your_results.py extract_characters_regex (thanku-all/parse_answer @afd52cf) |
| scienceqa_letter    | LLaVA-1.5 llava/eval/eval_science_qa.py (haotian-liu/LLaVA; lmms-eval's sqa_process_results reads the same two forms) |
| mvbench_correct     | MVBench (OpenGVLab/Ask-Anything video_chat2/mvbench.ipynb): `return_prompt + reply.strip().split('\\n')[0]`, then check_ans |

The quirks are kept on purpose (POPE's case-sensitive words, MME's 4-character prefix, the
Video-MME prefix list whose missing commas glue two pairs of prefixes, MVBench's substring test
that an empty reply passes): the point is to give the
number the official script gives.
"""

from __future__ import annotations

import re


def pope_answer(reply: str) -> str:
    """'no' if the first sentence holds the word 'No', 'not' or 'no' (case-sensitive, split on single
    spaces, commas removed), else 'yes', an empty reply included."""
    text = reply.split(".")[0] if "." in reply else reply
    words = text.replace(",", "").split(" ")
    return "no" if "No" in words or "not" in words or "no" in words else "yes"


def mme_answer(reply: str) -> str:
    """'yes' / 'no' if the lowercased reply is that word or its first 4 characters hold it ('yes'
    first), else 'other' (counted wrong)."""
    reply = reply.lower()
    if reply in ("yes", "no"):
        return reply
    prefix = reply[:4]
    return "yes" if "yes" in prefix else "no" if "no" in prefix else "other"


def gqa_prediction(reply: str) -> str:
    """`text.rstrip('.').lower()`, which GQA's eval.py then compares with the answer exactly."""
    return reply.rstrip(".").lower()


def _can_infer_option(reply: str, letters: str) -> str | None:
    """A lone option letter among the reply's last 4 words (punctuation spaced out); 'Z' for a lone Z."""
    for mark in ".()[],:;!*#{}":
        reply = reply.replace(mark, " ")
    words = [word.strip() for word in reply.split()]
    found = [letter for letter in letters if letter in words]
    if len(found) == 1 and words.index(found[0]) > len(words) - 5:
        return found[0]
    if not found and "Z" in words:
        return "Z"
    return None


def _can_infer_text(reply: str, options: dict[str, str]) -> str | None:
    """The one option whose text the (lowercased) reply contains, unless the reply is more than twice
    as long as all the options' texts together."""
    reply = reply.lower()
    if len(reply) > 2 * sum(len(str(text)) for text in options.values()):
        return None
    named = [letter for letter, text in options.items() if str(text).lower() in reply]
    return named[0] if len(named) == 1 else None


def vlmevalkit_choice(reply: str, options: dict[str, str]) -> str:
    """The option letter VLMEvalKit's exact matching infers from a reply, 'Z' when it infers none
    (always wrong)."""
    letters = "".join(options)
    return _can_infer_option(reply, letters) or _can_infer_text(reply, options) or "Z"


_VIDEO_MME_PREFIXES = (
    "The best answer is", "The correct answer is", "The answer is", "The answer",
    "The best option is" "The correct option is", "Best answer:" "Best option:",  # glued, as in the official list
    "Answer:", "Option:", "The correct answer", "The correct option",
)  # fmt: skip


def video_mme_letter(reply: str) -> str:
    """The first capital A-D of the reply after the answer prefixes are removed; '' when there is none
    or the reply has more than 10 words and no A-D (such replies are left out of the accuracy)."""
    text = reply.strip()
    for prefix in _VIDEO_MME_PREFIXES:
        text = text.replace(prefix, "")
    if len(text.split()) > 10 and not re.search("[ABCD]", text):
        return ""
    match = re.search(r"[ABCD]", text)
    return match[0] if match else ""


def scienceqa_letter(reply: str, letters: str) -> str | None:
    """The letter LLaVA-1.5's eval_science_qa.py parses: the reply is a letter of A-E, or starts with
    "X. ", or holds "The answer is X" followed by any character exactly once; a letter past the
    problem's choices (`letters`) or a failed parse is wrong (get_pred_idx -> -1)."""
    if reply in ("A", "B", "C", "D", "E"):
        letter = reply
    elif len(reply) >= 3 and reply[0] in "ABCDE" and reply[1:3] == ". ":
        letter = reply[0]
    else:
        found = re.findall(r"The answer is ([A-Z]).", reply)
        letter = found[0] if len(found) == 1 else None
    return letter if letter is not None and letter in letters else None


def mvbench_correct(reply: str, letter: str) -> bool:
    """MVBench's check_ans on the prediction its notebook forms: "(" (the answer prompt's last
    character, returned with the answer) + the reply's first line. Its first word, lowercased and
    without dots, must be a substring of the answer's "(x)", or contain it: "A", "(A) cat", "a."
    pass for answer A; so does an empty reply ("(" is in every "(x)")."""
    prediction = "(" + reply.strip().split("\n")[0]
    option = prediction.lower().split(" ")[0]
    answer = f"({letter.lower()})"
    return option.replace(".", "") in answer or answer in option
