"""Runtimes that compute logits for a padded batch: torch and ONNX Runtime."""
