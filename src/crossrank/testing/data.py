"""Shared test inputs: query–passage pairs that reach every input edge, a tiny BEIR dataset and
a training configuration sized for it.

Only words the tiny tokenizers know (:data:`crossrank.testing.WORDS`) are used, so every text
tokenizes the same way on every machine.

>>> from crossrank.testing import SCORING_PAIRS, write_tiny_beir
>>> len(SCORING_PAIRS)
6
>>> root = write_tiny_beir(tmp_path / "tiny")                    # doctest: +SKIP
>>> sorted(p.name for p in root.iterdir())                        # doctest: +SKIP
['corpus.jsonl.gz', 'qrels', 'queries.jsonl']
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any, List, Tuple

# A small workload: a query with a relevant and an irrelevant passage, and a second query.
PANDA_PAIRS: List[Tuple[str, str]] = [
    ("what is panda?", "hi"),
    ("what is panda?", "the giant panda is a bear of china that eats bamboo"),
    ("what is the capital of france?", "paris is the capital city of france"),
    ("what is the capital of france?", "pandas eat bamboo"),
]

# One query and six documents of mixed relevance: what the service tests rank.
PANDA_QUERY = "what is panda?"
PANDA_DOCS: List[str] = [
    "hi",
    "the giant panda is a bear of china that eats bamboo",
    "paris is the capital city of france",
    "pandas eat bamboo",
    "a black and white bear",
    "python is a snake and a language",
]

LONG_PASSAGE = " ".join(["the giant panda is a bear of china that eats bamboo in the rain"] * 20)

# Pairs that reach each input edge scores must agree on: a passage cut to fit, a query capped at
# 3/4 of max_length, an empty passage (scored, not dropped), upper case and punctuation.
SCORING_PAIRS: List[Tuple[str, str]] = [
    ("what does a panda eat?", "The giant panda eats bamboo."),
    ("what does a panda eat?", "Paris is the capital city of France."),
    ("what is the capital of france", LONG_PASSAGE),  # passage truncated (only_second)
    (" ".join(["what is the weather in the sky"] * 12), "blue sky and rain"),  # query capped
    ("python", ""),  # empty passage is scored, not dropped
    ("which bear eats bamboo", "A cat is an animal; a dog is an animal."),
]

# SCORING_PAIRS as lists, plus a passage far over 512 tokens: what every backend (ONNX, OpenVINO,
# compiled torch) must score like eager torch.
BACKEND_PAIRS: List[List[str]] = [list(p) for p in SCORING_PAIRS] + [
    ["who wrote hamlet?", LONG_PASSAGE * 3]
]

# Ten topics of three words each; the tiny BEIR dataset is built from them.
_TOPICS = [
    ("panda", "bamboo", "eat"),
    ("paris", "france", "capital"),
    ("python", "snake", "code"),
    ("river", "water", "rain"),
    ("cloud", "sky", "blue"),
    ("cat", "dog", "animal"),
    ("search", "retrieval", "document"),
    ("query", "passage", "rerank"),
    ("black", "white", "bear"),
    ("city", "weather", "china"),
]
_FILLER = ["giant", "language", "model", "score", "relevant", "answer"]  # in no topic


def write_tiny_beir(root: Path, gz: bool = True) -> Path:
    """Write a BEIR dataset at ``root``: per topic 2 relevant docs, 3 hard negatives, 2 queries.

    Each hard negative shares one word with its topic, so BM25 ranks it near the relevant ones.
    Query ids are ``q<topic><k>``, document ids ``t<topic>-r<i>`` (relevant) and ``t<topic>-n<i>``;
    the train and test qrels are the same. ``gz=False`` writes ``corpus.jsonl`` uncompressed.
    """
    root = Path(root)
    corpus, queries, qrels = [], [], []
    for t, (a, b, c) in enumerate(_TOPICS):
        corpus.append({"_id": f"t{t}-r0", "title": f"{a} {b}", "text": f"the {a} {b} and {c}"})
        corpus.append({"_id": f"t{t}-r1", "title": "", "text": f"{c} with {a} {b} {c}"})
        for n, shared in enumerate((a, b, c)):
            text = f"{shared} {_FILLER[n]} {_FILLER[n + 3]}"
            corpus.append({"_id": f"t{t}-n{n}", "title": "", "text": text})
        for k, words in enumerate(((a, b, c), (c, a, b))):
            query_id = f"q{t}{k}"
            queries.append({"_id": query_id, "text": "what " + " ".join(words)})
            qrels += [(query_id, f"t{t}-r0", 1), (query_id, f"t{t}-r1", 1)]
    root.mkdir(parents=True, exist_ok=True)
    lines = "\n".join(json.dumps(row) for row in corpus) + "\n"
    if gz:
        with gzip.open(root / "corpus.jsonl.gz", "wt", encoding="utf-8") as stream:
            stream.write(lines)
    else:
        (root / "corpus.jsonl").write_text(lines)
    (root / "queries.jsonl").write_text("\n".join(json.dumps(q) for q in queries) + "\n")
    (root / "qrels").mkdir(exist_ok=True)
    rows = ["query-id\tcorpus-id\tscore"] + [f"{q}\t{d}\t{s}" for q, d, s in qrels]
    for split in ("train", "test"):
        (root / "qrels" / f"{split}.tsv").write_text("\n".join(rows) + "\n")
    return root


def write_titled_corpus(root: Path, labelled: bool = False) -> Path:
    """Write a corpus that pseudo queries can be made from (``crossrank adapt``'s input).

    Per topic of the tiny BEIR dataset, two documents with a title of four or more words and a
    text of three sentences (so both ``title`` and ``ict`` queries can be drawn). With
    ``labelled``, test queries (``"what <word> <word>"``, one per topic) and their qrels (the
    topic's two documents) are written too; without it the queries and qrels files are broken on
    purpose, so any code that reads them fails.
    """
    root = Path(root)
    corpus, queries, qrels = [], [], []
    for t, (a, b, c) in enumerate(_TOPICS):
        for i, (x, y) in enumerate(((a, b), (b, c))):
            doc_id = f"t{t}-d{i}"
            corpus.append(
                {
                    "_id": doc_id,
                    "title": f"the {x} and the {y} {_FILLER[i]}",
                    "text": f"a {x} is {c} . the {y} and {a} score . {_FILLER[i + 2]} {b} {x} .",
                }
            )
            qrels.append((f"q{t}", doc_id, 1))
        queries.append({"_id": f"q{t}", "text": f"what {a} {b}"})
    root.mkdir(parents=True, exist_ok=True)
    with gzip.open(root / "corpus.jsonl.gz", "wt", encoding="utf-8") as stream:
        stream.write("".join(json.dumps(row) + "\n" for row in corpus))
    (root / "qrels").mkdir(exist_ok=True)
    if labelled:
        (root / "queries.jsonl").write_text("".join(json.dumps(q) + "\n" for q in queries))
        rows = ["query-id\tcorpus-id\tscore"] + [f"{q}\t{d}\t{s}" for q, d, s in qrels]
        (root / "qrels" / "test.tsv").write_text("\n".join(rows) + "\n")
    else:
        (root / "queries.jsonl").write_text('{"_id": "q1", "text": "secret"}\nnot json\n')
        (root / "qrels" / "test.tsv").write_text("bad header\n")
    return root


def tiny_train_config(data, base, out, **overrides: Any):
    """A ``TrainConfig`` for ``base`` on the tiny BEIR dataset at ``data``, writing to ``out``.

    Sized for a test (max_length 32, 4 queries a step, 3 negatives from BM25's top 10, 4 held-out
    queries, no periodic evaluation, no progress bar); ``overrides`` replace any field.

    >>> config = tiny_train_config(write_tiny_beir(tmp_path / "d"), base, tmp_path / "out",
    ...                            max_steps=4)                     # doctest: +SKIP
    """
    from crossrank.training.config import TrainConfig

    settings = dict(
        max_length=32,
        queries_per_step=4,
        negatives=3,
        negatives_depth=10,
        learning_rate=2e-3,
        warmup_ratio=0.1,
        eval_queries=4,
        eval_every=0,
        eval_top_n=5,
        show_progress=False,
    )
    settings.update(overrides)
    return TrainConfig(base, data, str(out), **settings)
