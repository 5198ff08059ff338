"""Prefill / decode benchmark of Qwen2-VL: `python scripts/bench.py --config configs/bench/qwen2_vl.py:real`.

Variants:
- `real` (default): Qwen2-VL-2B's real widths (LLM 1536 wide, 12 heads, 2 KV heads, MLP 8960,
  vocabulary 151936; vision tower 1280 wide, 16 heads) at reduced depth (4 LLM layers, 2 vision
  blocks), random weights, images of 448x448 (256 visual tokens) and 896x896 (1024).
- `tiny`: the tiny preset, two small cases, for a quick look.
- `test`: the tiny preset, one case, one repeat (tests/scripts/test_bench.py).
- `device` (`make bench-device`): Qwen2-VL-7B at full depth (28 LLM layers, 32 vision blocks),
  random weights in bfloat16, one 1792x1792 image (4096 visual tokens, ~4.2k tokens), on the
  first accelerator, with transformers (sdpa) on the same device; sized for ~8 minutes on one GPU.
  transformers gets its own random weights there (same shapes; copying 16 GB through the host
  would cost minutes), so its times are compared and its logits are not.
- `device_test`: the `device` code path on the tiny preset on CPU (tests/scripts/test_bench.py).

Every case also runs one smaller image through each step, in the same bucket, to show that the
compile count follows the buckets and not the image sizes.
"""

from ml_collections import ConfigDict

VARIANTS = ("real", "tiny", "test", "device", "device_test")


def _case(name: str, image: tuple[int, int], off_size: tuple[int, int], visual_bucket: int) -> ConfigDict:
    return ConfigDict(dict(name=name, image=image, off_size_image=off_size, visual_bucket=visual_bucket))


def get_config(variant: str = "real") -> ConfigDict:
    if variant not in VARIANTS:
        raise ValueError(f"unknown bench variant {variant!r}; choose one of {VARIANTS}")
    config = ConfigDict()
    config.seed = 0
    config.model = ConfigDict()
    config.model.preset = {"real": "2b", "device": "7b"}.get(variant, "tiny")  # configs/models/qwen2_vl.py presets
    config.model.text_layers = 4 if variant == "real" else 2
    config.model.vision_depth = 2
    config.mapper_channels = (32, 64, 128, 256, 512)  # the paper mapper (configs/mapper/paper.py)
    config.text_before = 16  # tokens of system prompt before the image
    config.text_after = 32  # instruction tokens after it
    config.text_bucket = 64
    config.keep_ratios = (0.5, 0.25, 0.111)
    config.scorer = "mapper"
    # Other scorers timed alone (keep 0.5's count of greedy steps for divprune and cdpruner): each one's share of
    # the unpruned prefill (visionzip's with the extra cost of reading the vision tower's last block)
    config.cost_scorers = (
        ("attention", "hawk", "visionzip", "divprune", "cdpruner")
        if variant in ("real", "device")
        else ("divprune", "visionzip")
    )
    config.decode_tokens = 16
    config.repeats = 5
    config.torch = True  # time transformers' PyTorch model on the same weights and inputs
    # Decoder layers unrolled, as the inference entry points run them (LayerStack.configure):
    # scanned, each step copies its layer's weights out of the stack on CPU (decode ~2x slower,
    # pruned prefills 4-19 points further from FLOPs-ideal: docs/results.md). XLA's FLOP column counts
    # an unrolled twin of each graph either way (benchmark.Steps.xla_flops).
    config.scan_layers = False
    config.torch_attention = "sdpa"  # transformers' default attention on CPU
    # Where no probabilities are read (tokcomp_jax.models.common.attention.IMPLEMENTATIONS);
    # "reference" times the eager path the parity tests compare.
    config.attention = "auto"
    config.dtype = "float32"  # weights, activations and KV cache (norms and softmax stay float32)
    config.same_weights = True  # transformers gets the Flax model's weights (else its own random ones)
    config.torch_device = "cpu"
    # The device's dense bfloat16 peak in TFLOP/s for MFU; None looks the device kind up (benchmark.PEAK_TFLOPS).
    config.peak_tflops = None
    # The eval runner's samples/s (prefill + greedy decode) at each batch size, beside
    # transformers' batched generate: one image size, `batches` batches per batch size.
    config.throughput = ConfigDict(
        dict(batch_sizes=(1, 8, 32), image=(112, 112), visual_bucket=16, decode_tokens=8, batches=2, repeats=2)
    )
    if variant == "real":
        # 256 visual tokens: 32 rows of ~320 tokens at 2B widths take ~30 s a batch on 2 CPU cores.
        config.throughput.update(dict(image=(448, 448), visual_bucket=256, batches=1, repeats=1))
    if variant == "real":
        config.cases = [
            _case("256 visual tokens", (448, 448), (392, 448), 256),
            _case("1024 visual tokens", (896, 896), (840, 896), 1024),
        ]
    else:
        config.cases = [
            _case("16 visual tokens", (112, 112), (84, 112), 16),
            _case("64 visual tokens", (224, 224), (196, 224), 64),
        ]
        config.repeats = 2
        config.decode_tokens = 4
    if variant in ("device", "device_test"):
        config.dtype = "bfloat16"
        config.same_weights = False
        config.cases = [_case("4096 visual tokens", (1792, 1792), (1736, 1792), 4096)]
        config.repeats = 3
    if variant == "device":
        config.model.text_layers, config.model.vision_depth = 28, 32
        # Scanned: ~25 graphs (steps x buckets x batch sizes) must compile within the 8 minutes, and
        # a scanned graph compiles in time independent of depth. Unrolled is unmeasured on GPU:
        # compare with --config.scan_layers=False --config.throughput.batch_sizes="(1,)".
        config.scan_layers = True
        config.throughput.update(dict(image=(896, 896), visual_bucket=1024, batches=2, repeats=2))
        config.torch_device = "cuda"
    if variant in ("test", "device_test"):
        config.throughput.update(dict(batch_sizes=(1, 4), decode_tokens=3, batches=2, repeats=1))
    if variant == "device_test":
        config.cases = [_case("16 visual tokens", (112, 112), (84, 112), 16)]
        config.repeats, config.decode_tokens = 1, 3
        config.peak_tflops = 1.0  # a made-up peak, so that the test sees MFU computed on CPU
    if variant == "test":
        config.cases = config.cases[:1]
        config.repeats = 1
        config.decode_tokens = 3
    return config
