"""The record fields as lmms-eval's task functions read them (images and videos as absolute paths)."""

from PIL import Image


def doc_to_visual(doc):
    return [Image.open(path).convert("RGB") for path in doc["images"]]


def doc_to_text(doc):
    return doc["question"]


def doc_to_choice(doc):
    return doc["options"]


def doc_to_video(doc):
    return [doc["video"]]
