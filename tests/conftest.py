"""Fixtures: tiny random cross-encoders built at test time (crossrank.testing), no network."""

from __future__ import annotations

import pytest

from crossrank.errors import reset_notes
from crossrank.testing import save_model


@pytest.fixture(scope="session")
def model_dirs(tmp_path_factory):
    """Local checkpoint directories: name → path."""
    root = tmp_path_factory.mktemp("models")
    specs = {
        "bert": ("bert", 1),
        "bert-2logit": ("bert", 2),
        "xlm-roberta": ("xlm-roberta", 1),
        "electra": ("electra", 1),
        "deberta-v2": ("deberta-v2", 1),
    }
    return {name: save_model(root / name, kind, labels) for name, (kind, labels) in specs.items()}


@pytest.fixture(scope="session")
def bert_dir(model_dirs):
    return model_dirs["bert"]


@pytest.fixture(autouse=True)
def _fresh_notes():
    """Each test sees crossrank's one-time notes afresh."""
    reset_notes()
    yield
    reset_notes()
