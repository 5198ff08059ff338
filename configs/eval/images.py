"""The image benchmarks of the paper's tables, read from their local copies under --data_dir:

    python scripts/evaluate.py --config configs/eval/images.py --data_dir /data/benchmarks --model M ...

Override one field with e.g. `--config.batch_size=16`; the directory layout each adapter expects
is in tokcomp_jax/eval/adapters.py.
"""

from ml_collections import ConfigDict

BENCHMARKS = (  # (name in the report, adapter, directory under --data_dir)
    ("gqa", "gqa", "gqa"),
    ("textvqa", "textvqa", "textvqa"),
    ("pope", "pope", "pope"),
    ("mme", "mme", "MME_Benchmark_release_version"),
    ("mmbench", "mmbench", "mmbench"),
    ("scienceqa_img", "scienceqa", "scienceqa"),
    ("seed_image", "seed", "seed_bench"),
    ("mmstar", "mmstar", "mmstar"),
)


def get_config() -> ConfigDict:
    config = ConfigDict()
    config.codec = "chat"  # the model's tokenizer and chat template (--tokenizer, default --model)
    config.benchmarks = [ConfigDict(dict(name=n, adapter=a, data_dir=d)) for n, a, d in BENCHMARKS]
    config.batch_size = 8
    config.text_buckets = (64, 128, 256, 512)
    config.visual_buckets = (64, 256, 1024, 4096)
    config.max_new_tokens = 16
    return config
