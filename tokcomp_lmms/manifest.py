"""What lmms-eval reads from the `lmms_eval.models` entry point: the model's name and class path.
Strings only, so lmms-eval's start-up imports nothing of the model."""

from lmms_eval.models.registry_v2 import ModelManifest

MANIFEST = ModelManifest(model_id="tokcomp_jax", simple_class_path="tokcomp_lmms.model.TokcompJax")
