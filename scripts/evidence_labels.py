"""A finished miniature run's training labels with the ground-truth evidence as their relevance:

    python scripts/evidence_labels.py --run outputs/miniature-demo --out OUT

Copies the run's training labels (RUN/labels/train-*: the mapper's stored features and all) with each
sample's relevance replaced by its evidence cells (uniform over them, 0 elsewhere). A mapper trained on
the copy (`scripts/train_mapper.py --config.data.dir=OUT`) shows what it learns from perfect labels,
apart from how good the explanation labels are (issue 41's diagnosis). Miniature only: a real
benchmark has no evidence cells.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tokcomp_jax import cli
from tokcomp_jax.data import vqa
from tokcomp_jax.data.labels import read_split, write_label_dataset
from tokcomp_jax.miniature.finished import read_summary, run_config, split_data


def evidence_relevance(example: dict) -> np.ndarray:
    """A training example's evidence cells as a relevance [n] summing to 1."""
    cells = vqa.evidence_tokens(example["evidence"], example["image"].shape[:2]).astype(np.float32)
    if not cells.any():
        raise ValueError(f"{example['sample_id']} has no evidence cells")
    return cells / cells.sum()


def main(argv=None) -> Path:
    parser = cli.ArgumentParser(__doc__)
    parser.add_argument("--run", type=Path, required=True, help="a finished miniature run (scripts/demo.py --out)")
    parser.add_argument("--out", type=Path, required=True, help="where to write the label dataset")
    args = parser.parse_args(argv)
    config = run_config(read_summary(args.run))
    found = sorted((args.run / "labels").glob("train-*"))
    if len(found) != 1:
        parser.error(f"--run {args.run} has {len(found)} labels/train-* directories, not one: not a miniature run")
    labels = found[0]
    examples = {e["sample_id"]: e for e in split_data(args.run, config)["train"]}
    relabelled = []
    for label in read_split(labels / "tfds", "train"):
        relevance = evidence_relevance(examples[label["sample_id"]])
        if relevance.shape != label["relevance"].shape:
            raise ValueError(
                f"{label['sample_id']}: {relevance.size} evidence slots for {label['relevance'].size} tokens"
            )
        relabelled.append({**label, "relevance": relevance})
    directory = write_label_dataset(args.out, {"train": relabelled})
    print(f"{len(relabelled)} training labels with evidence relevance: {directory}")
    return directory


if __name__ == "__main__":
    cli.run_main(main)
