"""One evaluation sample, whatever benchmark it comes from, and how its prompt and images are made.

Adapters (tokcomp_jax.eval.adapters) turn a benchmark's published files into EvalSamples; images
stay on disk (a path) or in the file (bytes) until a batch needs them.
"""

from __future__ import annotations

import dataclasses
import io
from pathlib import Path

import numpy as np
from PIL import Image

METRICS = ("vqa", "exact", "gqa", "choice", "mcq", "circular", "scienceqa", "mvbench", "video_mme", "pope", "mme")

SHORT_ANSWER = "Answer the question using a single word or phrase."
LETTER_ANSWER = "Answer with the option's letter from the given choices directly."

ImageSource = Path | bytes | Image.Image  # a file, its encoded bytes, or a decoded PIL image


@dataclasses.dataclass(frozen=True)
class VideoClip:
    """A video to sample `num_frames` frames from, uniformly over [start, end) seconds (the whole
    video when not given): a file PyAV decodes, or a directory of frame images taken at `fps`."""

    path: Path
    num_frames: int = 16
    start: float | None = None
    end: float | None = None
    fps: float = 3.0  # frame directories only

    def __post_init__(self):
        if self.num_frames < 1:
            raise ValueError(f"{self.path}: num_frames must be at least 1")


@dataclasses.dataclass(frozen=True)
class EvalSample:
    benchmark: str
    sample_id: str
    prompt: str  # the full user turn: question, hint, options and the answer-format instruction
    answers: tuple[
        str, ...
    ]  # references: human answers (vqa), the answer (exact, gqa, pope, mme), a letter (choice ...)
    metric: str  # one of METRICS: how a reply is scored
    images: tuple[ImageSource, ...] = ()
    video: VideoClip | None = None
    options: tuple[tuple[str, str], ...] = ()  # (letter, text) for multiple choice
    category: str = ""  # reported per category (MMBench, SEED, MME, POPE split ...)
    group: str = ""  # MME: the image whose two questions make accuracy+; MMBench: the circular group

    def __post_init__(self):
        if self.metric not in METRICS:
            raise ValueError(f"{self.benchmark} sample {self.sample_id}: unknown metric {self.metric!r}")
        if not self.prompt.strip():
            raise ValueError(f"{self.benchmark} sample {self.sample_id}: empty prompt")
        if not self.answers:
            raise ValueError(f"{self.benchmark} sample {self.sample_id}: no reference answer")


@dataclasses.dataclass(frozen=True)
class Prompt:
    """A user turn to answer with no reference to score against (another harness scores the reply,
    e.g. lmms-eval): what the runner's `generate_records` reads of an EvalSample."""

    sample_id: str
    prompt: str
    images: tuple[ImageSource, ...] = ()
    video: VideoClip | None = None

    def __post_init__(self):
        if not self.prompt.strip():
            raise ValueError(f"sample {self.sample_id}: empty prompt")


def choice_prompt(question: str, options: list[tuple[str, str]], hint: str = "") -> str:
    """LLaVA's multiple-choice prompt: hint, question, one "X. option" line each, the letter instruction."""
    lines = ([hint.strip()] if hint and hint.strip() else []) + [question.strip()]
    lines += [f"{letter}. {text}" for letter, text in options]
    return "\n".join(lines + [LETTER_ANSWER])


def load_image(source: ImageSource) -> np.ndarray:
    """RGB uint8 [H, W, 3] from a path, encoded bytes or a PIL image; a clear error names what cannot be read."""
    if isinstance(source, Image.Image):
        return rgb8(source)
    where = "embedded image bytes" if isinstance(source, bytes) else str(source)
    try:
        with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as image:
            return rgb8(image, where)
    except (OSError, ValueError) as err:
        raise ValueError(f"cannot read image {where}: {err}") from None


def rgb8(image: Image.Image, where: str = "image") -> np.ndarray:
    """Any PIL image as 8-bit RGB [H, W, 3]: 16-bit and 32-bit integer greyscale scaled to 0..255
    (PIL's own convert clips them, turning most 16-bit scans white), alpha composited on white
    (as transformers' convert_rgb does), palette and other modes through PIL; float images refused."""
    if image.mode.startswith("I;16") or image.mode == "I":
        values = np.asarray(image).astype(np.int64)
        if values.size and (values.min() < 0 or values.max() > 65535):
            raise ValueError(f"{where}: {image.mode} values in [{values.min()}, {values.max()}] are not 16-bit")
        grey = np.round(values / 257.0).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=-1)
    if image.mode == "F":
        raise ValueError(f"{where}: a floating-point image (mode F) has no defined 8-bit range; save it as 8 or 16 bit")
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return np.asarray(Image.alpha_composite(white, rgba).convert("RGB"))
    return np.asarray(image.convert("RGB"))


def uniform_indices(count: int, num_frames: int, first: int = 0) -> np.ndarray:
    """`num_frames` indices in [first, first + count): the middle of as many equal segments."""
    if count < 1:
        raise ValueError("no frames to sample from")
    return first + np.minimum(((np.arange(num_frames) + 0.5) * count / num_frames).astype(int), count - 1)


def frame_numbers(start: float | None, end: float | None, fps: float, count: int, num_frames: int) -> list[int]:
    """Frames of a frame directory, numbered from 1 as its files are (00001.jpg ...), as MVBench's
    loader picks them (Ask-Anything video_chat2/mvbench.ipynb, MVBench_dataset.get_index with
    first_idx=1): the middle of `num_frames` equal segments of [start, end] seconds, the whole
    directory without a bound."""
    start, end = (-100000, 100000) if start is None or end is None else (start, end)
    first, last = max(1, round(start * fps)), min(round(end * fps), count)
    segment = float(last - first) / num_frames
    return [int(first + segment / 2 + np.round(segment * index)) for index in range(num_frames)]


def load_video(clip: VideoClip) -> np.ndarray:
    """The clip's frames, RGB uint8 [num_frames, H, W, 3]."""
    return load_video_and_rate(clip)[0]


def sampling_rate(num_frames: int, span_seconds: float) -> float | None:
    """Frames per second of `num_frames` spread evenly over `span_seconds` (None for no span)."""
    return num_frames / span_seconds if span_seconds > 0 else None


def load_video_and_rate(clip: VideoClip) -> tuple[np.ndarray, float | None]:
    """The clip's frames, RGB uint8 [num_frames, H, W, 3], and the rate they sample it at (frames
    per second of the span they cover; None where the span is unknown): what transformers' video
    processors read as the clip's fps to place Qwen3-VL's timestamps and Qwen2.5-VL's frame times."""
    if clip.path.is_dir():
        files = sorted(p for p in clip.path.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
        if not files:
            raise ValueError(f"video directory {clip.path} holds no frames")
        numbers = frame_numbers(clip.start, clip.end, clip.fps, len(files), clip.num_frames)
        by_name = {path.stem: path for path in files}  # MVBench opens f"{number:05d}.jpg"; else by position
        chosen = [by_name.get(f"{n:05d}", files[min(n, len(files)) - 1]) for n in numbers]
        frames = [load_image(path) for path in chosen]
        differing = next((i for i, frame in enumerate(frames) if frame.shape != frames[0].shape), None)
        if differing is not None:
            (h0, w0), (h, w) = frames[0].shape[:2], frames[differing].shape[:2]
            raise ValueError(
                f"video directory {clip.path}: frames differ in size ({chosen[0].name} is {w0}x{h0}, "
                f"{chosen[differing].name} is {w}x{h} pixels); resize them to one size"
            )
        span = (max(numbers) - min(numbers)) * clip.num_frames / max(clip.num_frames - 1, 1) / clip.fps
        return np.stack(frames), sampling_rate(clip.num_frames, span)
    if not clip.path.is_file():
        raise ValueError(f"video {clip.path} does not exist")
    import av  # imported here: only the video benchmarks need it

    try:
        with av.open(str(clip.path)) as container:  # pass 1: timestamps only, frames dropped as decoded
            times = np.array([float(f.time or 0.0) for f in container.decode(video=0)])
        inside = np.flatnonzero(
            (times >= (clip.start if clip.start is not None else -np.inf))
            & (times < (clip.end if clip.end is not None else np.inf))
        )
        inside = inside if inside.size else np.arange(len(times))
        wanted = inside[uniform_indices(len(inside), clip.num_frames)]
        kept = {}
        with av.open(str(clip.path)) as container:  # pass 2: keep the wanted frames
            for index, frame in enumerate(container.decode(video=0)):
                if index in wanted:
                    kept[index] = frame.to_ndarray(format="rgb24")
                if index >= wanted.max():
                    break
    except av.error.FFmpegError as err:
        raise ValueError(f"cannot decode video {clip.path}: {err}") from None
    step = float(np.median(np.diff(times))) if len(times) > 1 else 0.0
    span = float(times[inside[-1]] - times[inside[0]]) + step
    return np.stack([kept[i] for i in wanted]), sampling_rate(clip.num_frames, span)
