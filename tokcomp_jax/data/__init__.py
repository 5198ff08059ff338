"""TFDS datasets, written and read without TensorFlow (array_record files, random-access sources)."""
