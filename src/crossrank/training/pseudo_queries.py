"""Training data from a corpus alone: pseudo queries written as a BEIR-format directory.

``crossrank train`` needs (query, relevant document) pairs. Without labels, each document can make
its own query:

- ``title``: the title is the query; the document without its title is the positive.
- ``ict`` (inverse cloze task): a sentence drawn from the document is the query; the document with
  that sentence removed is the positive.

Only ``corpus.jsonl[.gz]`` of the source is read: never its ``queries.jsonl`` nor its qrels, so the
held-out test queries of the collection stay unseen. A document gives at most one query, and its
positive *replaces* it in the written corpus under a new id (``<doc>#title`` / ``<doc>#ict``): the
original holds the query verbatim, so kept as a BM25 hard negative it would be a false negative.
Queries whose text is also a title or sentence of another document are skipped for the same reason.
Labelled queries of other collections can be mixed in (``mix``), their ids prefixed.

``agreement_top=K`` keeps a pseudo query only if BM25, over the written corpus, ranks its positive
in the top K (round-trip filtering, as InPars and Promptagator filter generated queries): a
sentence such as "the results are discussed." matches hundreds of documents, and its label would
contradict the BM25 teacher that ``crossrank adapt`` trains beside it.

>>> from crossrank.training.pseudo_queries import make_pseudo_dataset
>>> make_pseudo_dataset("data/cranfield", "data/cranfield-pseudo", kinds=("title", "ict"))  # doctest: +SKIP
{'queries': {'title': 689, 'ict': 661}, 'corpus_size': 1400, ...}
"""

from __future__ import annotations

import json
import os
import random
import shutil
from collections import Counter
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple, Union

from ..errors import ArgumentError
from ..evaluation.beir import _find, _read_jsonl, load_beir

KINDS = ("title", "ict")
INFO_FILE = "pseudo.json"
_ABBREVIATIONS = frozenset(
    "al approx ca cf dr e.g eq eqs et etc fig figs i.e mr mrs ms no nos prof ref refs resp sec st "
    "vol vs".split()
)
_CLOSERS = "\"')]}\u201d\u2019"

__all__ = ["KINDS", "check_mixes", "make_pseudo_dataset", "split_sentences", "parse_mix"]


def split_sentences(text: str) -> List[str]:
    """Sentences of ``text``, whitespace collapsed: a break after ``.``, ``!`` or ``?`` (closing
    quotes/brackets allowed) unless the word is a common abbreviation, an initial or dotted (U.S.).

    >>> split_sentences("Flow past a plate (Fig. 2) is studied . results agree. See e.g. ref 3!")
    ['Flow past a plate (Fig. 2) is studied .', 'results agree.', 'See e.g. ref 3!']
    """
    sentences, current = [], []
    for token in text.split():
        current.append(token)
        core = token.rstrip(_CLOSERS)
        if not core.endswith((".", "!", "?")):
            continue
        word = core.rstrip(".!?").lstrip("([{\"'").lower()
        dotted = "." in word and word.replace(".", "").isalpha()
        initial = len(word) == 1 and word.isalpha()
        if core.endswith(".") and (word in _ABBREVIATIONS or dotted or initial):
            continue
        sentences.append(" ".join(current))
        current = []
    if current:
        sentences.append(" ".join(current))
    return sentences


def _norm(text: str) -> str:
    return " ".join(text.lower().split())


def _key(text: str) -> str:
    """What "the same query" means: case, spacing and final punctuation ignored."""
    return _norm(text).rstrip(" .!?")


def _words(text: str) -> int:
    return sum(1 for token in text.split() if any(c.isalnum() for c in token))


def parse_mix(spec: str) -> Tuple[str, str]:
    """``"DIR"`` or ``"DIR:SPLIT"`` → ``(dir, split)``; the split defaults to ``train``.

    >>> parse_mix("../data/scifact"), parse_mix("../data/scifact:dev")
    (('../data/scifact', 'train'), ('../data/scifact', 'dev'))
    """
    if not isinstance(spec, (str, os.PathLike)):
        raise ArgumentError(f"mix (--mix) entries must be 'DIR[:SPLIT]' strings, got {spec!r}")
    spec = os.fspath(spec)
    head, sep, split = spec.rpartition(":")
    if (
        sep
        and head
        and split
        and "/" not in split
        and "\\" not in split
        and not os.path.isdir(spec)
    ):
        return head, split
    return spec, "train"


def check_mixes(mix: Union[None, str, Sequence[str]]) -> List[Tuple[str, str]]:
    """``mix`` (one ``"DIR[:SPLIT]"`` or several) as ``(dir, split)`` pairs, each dir checked to
    exist: callers check before they write anything."""
    mixes = [] if mix is None else [mix] if isinstance(mix, (str, os.PathLike)) else list(mix)
    parsed = [parse_mix(m) for m in mixes]
    for path, _ in parsed:
        if not os.path.isdir(path):
            raise FileNotFoundError(f"mix (--mix) {path!r} is not a directory")
    return parsed


def _check_arguments(
    kinds, max_queries, mix_max_queries, min_words, max_words, agreement_top
) -> Tuple[str, ...]:
    if isinstance(kinds, str):
        kinds = kinds.split(",")
    kinds = tuple(dict.fromkeys(k.strip() for k in kinds if k.strip()))
    if not kinds or any(k not in KINDS for k in kinds):
        raise ArgumentError(f"kinds (--kind) must be one or more of {KINDS}, got {kinds!r}")
    for name, value, flag in (
        ("max_queries", max_queries, "--max-queries"),
        ("mix_max_queries", mix_max_queries, "--mix-max-queries"),
        ("agreement_top", agreement_top, "--bm25-agreement"),
    ):
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or value < 1
        ):
            raise ArgumentError(f"{name} ({flag}) must be an int >= 1 or None, got {value!r}")
    if isinstance(min_words, bool) or not isinstance(min_words, int) or min_words < 1:
        raise ArgumentError(f"min_query_words (--min-query-words) must be >= 1, got {min_words!r}")
    if isinstance(max_words, bool) or not isinstance(max_words, int) or max_words < min_words:
        raise ArgumentError(
            f"max_query_words (--max-query-words) must be an int >= min_query_words ({min_words}),"
            f" got {max_words!r}"
        )
    return kinds


def _read_corpus(source_dir: str) -> Tuple[str, Dict[str, Tuple[str, str]]]:
    if not os.path.isdir(source_dir):
        raise FileNotFoundError(f"source_dir (DATA_DIR) {source_dir!r} is not a directory")
    path = _find(source_dir, "corpus.jsonl", "corpus.jsonl.gz")
    corpus = {}
    for row in _read_jsonl(path, ("_id", "title", "text")):
        corpus[row["_id"]] = (row.get("title", ""), row["text"])
    return path, corpus


class _Maker:
    """Per-document candidates: a title query, or ICT sentences, that pass every check."""

    def __init__(self, corpus: Dict[str, Tuple[str, str]], min_words: int, max_words: int):
        self.corpus, self.min_words, self.max_words = corpus, min_words, max_words
        self.sentences = {d: split_sentences(text) for d, (_, text) in corpus.items()}
        # A query that is also another document's title or sentence would make that document a
        # false hard negative; count each normalized title/sentence once per document.
        self.seen: Counter = Counter()
        for doc_id, (title, _) in corpus.items():
            keys = {_key(s) for s in self.sentences[doc_id]} | {_key(title)}
            self.seen.update(keys - {""})
        self.skipped: Counter = Counter()

    def _fits(self, query: str) -> bool:
        return self.min_words <= _words(query) <= self.max_words

    def title(self, doc_id: str) -> Optional[Tuple[str, dict]]:
        title, text = self.corpus[doc_id]
        query = " ".join(title.split())
        key = _key(title)
        if not self._fits(query) or _words(text) < self.min_words:
            reason = "title: too short/long or no text"
        elif not key or key in _norm(text):
            reason = "title: repeated in the text"
        elif self.seen[key] > 1:
            reason = "title: shared with another document"
        else:
            return query, {"_id": f"{doc_id}#title", "title": "", "text": " ".join(text.split())}
        self.skipped[reason] += 1
        return None

    def ict(self, doc_id: str, rng: random.Random) -> Optional[Tuple[str, dict]]:
        title, _ = self.corpus[doc_id]
        sentences = self.sentences[doc_id]
        order = list(range(len(sentences)))
        rng.shuffle(order)
        for i in order if len(sentences) > 1 else ():
            query = sentences[i]
            if not self._fits(query) or self.seen[_key(query)] > 1:
                continue
            rest = " ".join(sentences[:i] + sentences[i + 1 :])
            if _words(rest) >= self.min_words and _key(query) not in _norm(f"{title} {rest}"):
                return query, {"_id": f"{doc_id}#ict", "title": title, "text": rest}
        self.skipped["ict: no usable sentence"] += 1
        return None


def _prefix(name: str, taken: Iterable[str], ids: Sequence[str]) -> str:
    base = "".join(c if c.isalnum() or c in "-_." else "-" for c in name) or "mix"
    taken = set(taken)
    for n in range(1, 10_000):
        prefix = f"{base}{n if n > 1 else ''}:"
        if prefix not in taken and not any(i.startswith(prefix) for i in ids):
            return prefix
    raise ValueError(f"no free id prefix for mixed collection {name!r}")  # pragma: no cover


def _prepare_output(output_dir: str, protected: Sequence[str], overwrite: bool) -> Path:
    out = Path(output_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"output_dir (--output) {out} is a file, not a directory")
    resolved = out.resolve()
    for path in protected:
        data = Path(path).resolve()
        if resolved == data or resolved in data.parents:
            raise ValueError(
                f"output_dir (--output) {out} holds the input collection {path}: choose another"
            )
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise ValueError(
                f"output_dir (--output) {out} is not empty: pass --overwrite (overwrite=True) to "
                "delete its contents, or choose another directory"
            )
        for entry in out.iterdir():
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
    (out / "qrels").mkdir(parents=True, exist_ok=True)
    return out


def _bm25_disagreements(rows: List[dict], qrels: List[Tuple[str, str, int]], queries, top: int):
    """Ids of the pseudo queries whose positive BM25 does not rank in its top ``top`` of ``rows``."""
    from ..evaluation.beir import BeirData
    from ..evaluation.bm25 import BM25

    corpus = {row["_id"]: (row["title"], row["text"]) for row in rows}
    run = BM25(BeirData(corpus, {}, {})).search({q["_id"]: q["text"] for q in queries}, top)
    return {query_id for query_id, doc_id, _ in qrels if doc_id not in run.get(query_id, {})}


def _write_jsonl(path: Path, rows: Iterable[dict]) -> None:
    with open(path, "w", encoding="utf-8") as stream:
        for row in rows:
            stream.write(json.dumps(row, ensure_ascii=False) + "\n")


def make_pseudo_dataset(
    source_dir: str,
    output_dir: str,
    kinds: Union[str, Sequence[str]] = ("title",),
    max_queries: Optional[int] = None,
    seed: int = 42,
    mix: Union[None, str, Sequence[str]] = None,
    mix_max_queries: Optional[int] = None,
    min_query_words: int = 4,
    max_query_words: int = 64,
    agreement_top: Optional[int] = None,
    overwrite: bool = False,
) -> dict:
    """Write a BEIR training directory (split ``train``) of pseudo queries from ``source_dir``'s corpus.

    ``kinds``: ``"title"``, ``"ict"`` or both (each document then gives one of its eligible kinds,
    drawn at random). ``max_queries`` caps the pseudo queries (documents drawn at random, seeded).
    ``mix``: ``"DIR[:SPLIT]"`` entries whose corpus and labelled queries of SPLIT (default
    ``train``; at most ``mix_max_queries`` each, sampled) are added with ids prefixed ``<name>:``.
    ``agreement_top``: keep only the pseudo queries whose positive BM25 ranks in its top K.
    Returns the summary also saved as ``pseudo.json``. Same arguments, same files.
    """
    kinds = _check_arguments(
        kinds, max_queries, mix_max_queries, min_query_words, max_query_words, agreement_top
    )
    source_dir = os.fspath(source_dir)
    mixes = check_mixes(mix)
    corpus_path, corpus = _read_corpus(source_dir)
    loaded = []
    for path, split in mixes:
        if os.path.samefile(path, source_dir):
            raise ValueError(
                f"mix (--mix) {path!r} is the source collection: its qrels stay unread"
            )
        loaded.append((path, split, load_beir(path, split)))
    out = _prepare_output(os.fspath(output_dir), [source_dir] + [p for p, _ in mixes], overwrite)

    rng = random.Random(seed)
    maker = _Maker(corpus, min_query_words, max_query_words)
    order = list(corpus)
    rng.shuffle(order)
    queries: List[dict] = []
    qrels: List[Tuple[str, str, int]] = []
    replaced: Dict[str, dict] = {}
    counts = Counter({kind: 0 for kind in kinds})
    for doc_id in order:
        if max_queries is not None and len(replaced) >= max_queries:
            break
        options = list(kinds)
        rng.shuffle(options)
        for kind in options:
            made = maker.title(doc_id) if kind == "title" else maker.ict(doc_id, rng)
            if made is not None:
                query, positive = made
                if positive["_id"] in corpus:
                    raise ValueError(f"{corpus_path}: id {positive['_id']!r} is taken; rename it")
                queries.append({"_id": f"{kind}:{doc_id}", "text": query})
                qrels.append((f"{kind}:{doc_id}", positive["_id"], 1))
                replaced[doc_id] = positive
                counts[kind] += 1
                break
    rows = [replaced.get(d) or {"_id": d, "title": t, "text": x} for d, (t, x) in corpus.items()]
    dropped = Counter()
    if agreement_top is not None and queries:
        # a dropped query's document stays replaced: it is still a document of the corpus
        disagree = _bm25_disagreements(rows, qrels, queries, agreement_top)
        dropped.update(q.split(":", 1)[0] for q in disagree)
        queries = [q for q in queries if q["_id"] not in disagree]
        qrels = [row for row in qrels if row[0] not in disagree]
        counts.subtract(dropped)

    mixed, query_counts = [], dict(counts)
    for path, split, data in loaded:
        query_ids = list(data.qrels)
        if mix_max_queries is not None and len(query_ids) > mix_max_queries:
            chosen = set(random.Random(seed).sample(query_ids, mix_max_queries))
            query_ids = [q for q in query_ids if q in chosen]
        prefix = _prefix(data.name, [m["prefix"] for m in mixed] + ["title:", "ict:"], list(corpus))
        rows += [{"_id": prefix + d, "title": t, "text": x} for d, (t, x) in data.corpus.items()]
        queries += [{"_id": prefix + q, "text": data.queries[q]} for q in query_ids]
        qrels += [(prefix + q, prefix + d, r) for q in query_ids for d, r in data.qrels[q].items()]
        query_counts[f"{prefix}{split}"] = len(query_ids)
        mixed.append(
            {
                "path": os.path.abspath(path),
                "split": split,
                "prefix": prefix,
                "queries": len(query_ids),
                "documents": len(data.corpus),
            }
        )
    for what, ids in (("corpus", [r["_id"] for r in rows]), ("query", [q["_id"] for q in queries])):
        if len(set(ids)) != len(ids):  # pragma: no cover - prefixes are chosen to prevent this
            raise ValueError(f"{what} ids collide after mixing; rename the mixed collection")

    _write_jsonl(out / "corpus.jsonl", rows)
    _write_jsonl(out / "queries.jsonl", queries)
    lines = ["query-id\tcorpus-id\tscore"] + [f"{q}\t{d}\t{r}" for q, d, r in qrels]
    (out / "qrels" / "train.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    summary = {
        "output": str(out.resolve()),
        "source": os.path.abspath(source_dir),
        "source_files_read": [os.path.basename(corpus_path)],  # never its queries or qrels
        "kinds": list(kinds),
        "seed": seed,
        "max_queries": max_queries,
        "min_query_words": min_query_words,
        "max_query_words": max_query_words,
        "queries": query_counts,
        "pseudo_queries": sum(counts.values()),
        "corpus_size": len(rows),
        "replaced_documents": len(replaced),
        "skipped": dict(sorted(maker.skipped.items())),
        "agreement_top": agreement_top,
        "dropped_by_agreement": dict(sorted(dropped.items())),
        "mix": mixed,
        "mix_max_queries": mix_max_queries,
        "split": "train",
    }
    (out / INFO_FILE).write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
    return summary
