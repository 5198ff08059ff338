"""Evaluation on standard benchmarks: adapters for their published formats, metrics, a resumable
batched runner and device-mesh sharding."""
