"""tokcomp_jax inside lmms-eval, the harness the field reports token compression with.

Installed by the `lmms` extra (its own venv: `make test-lmms`), registered by the entry point
`lmms_eval.models: tokcomp_jax` (manifest.py); the model is model.py. lmms-eval imports torch, so this
package stays outside `tokcomp_jax`, whose runtime imports none.
"""
