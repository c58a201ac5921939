"""The supported-models table: each model family, its checkpoints, how it scores, and its backends.

One declaration has two readers. ``tests/families/test_support_matrix.py`` checks every cell of
every row on a tiny random checkpoint of the row (a ``works`` cell scores equal to the row's torch
float32 scores within the cell's tolerance; every other cell refuses before any weights load, with
the backend named), and ``scripts/docs/gen_supported_models.py`` writes the docs page
(``models.md``) from it with :func:`markdown`, so the page cannot claim a cell no test covers.
A new family adds one :class:`FamilyRow` to :data:`ROWS`; a new backend cell, one :class:`Cell`.

>>> [cell.name for cell in CELLS][:2]
['torch float32', 'torch bfloat16']
>>> row("mxbai-rerank-v2").options
{'prompt_format': 'mxbai'}
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, FrozenSet, List, Optional, Tuple


@dataclass(frozen=True)
class Cell:
    """One way of running a model: a backend, a dtype and a quantization (the Reranker options).

    ``tolerance``: the most a score may differ from the torch float32 score in this cell;
    ``correlation``: for cells that round the weights, the least Pearson correlation of its scores
    with the float32 ones (a shifted but faithful ranking passes, noise does not).
    """

    name: str
    backend: str
    dtype: str = "float32"
    quantize: Optional[str] = None
    tolerance: float = 1e-4
    correlation: Optional[float] = None

    @property
    def options(self) -> Dict[str, Any]:
        """The Reranker keywords that choose this cell (on CPU)."""
        return {"backend": self.backend, "dtype": self.dtype, "quantize": self.quantize}


# Every cell the table has a column for, tested on CPU. bfloat16 and int8 cells round the
# weights, so they are held to a tolerance and a correlation, not to float32 equality (measured on
# the tiny random models, scores spread over ~1.5: bfloat16 within 0.08, int8 within 0.5 with
# correlation >= 0.97; a tiny model quantizes worse than a real one).
_BF16 = dict(dtype="bfloat16", tolerance=0.25, correlation=0.95)
_INT8 = dict(quantize="int8", tolerance=0.75, correlation=0.9)
CELLS: Tuple[Cell, ...] = (
    Cell("torch float32", "torch"),
    Cell("torch bfloat16", "torch", **_BF16),
    Cell("onnx float32", "onnx"),
    Cell("onnx int8", "onnx", **_INT8),
    Cell("openvino float32", "openvino"),
    Cell("openvino bfloat16", "openvino", **_BF16),
    Cell("openvino int8", "openvino", **_INT8),
)
ALL_CELLS: FrozenSet[str] = frozenset(cell.name for cell in CELLS)
TORCH_CELLS: FrozenSet[str] = frozenset(cell.name for cell in CELLS if cell.backend == "torch")


@dataclass(frozen=True)
class Tiny:
    """How the tests build a tiny random checkpoint of a row: ``crossrank.testing.<builder>(path,
    *args)``, which saves it at ``path``."""

    builder: str
    args: Tuple[Any, ...] = ()


@dataclass(frozen=True)
class FamilyRow:
    """One kind of reranking checkpoint and the cells it works in (every other cell refuses).

    Attributes:
        title: what users call it.
        family: the :attr:`ModelFamily.name <crossrank.families.base.ModelFamily.name>` it is
            detected as.
        examples: hub ids of checkpoints of this kind.
        scoring: how a score is computed, in a few words (Markdown).
        reference: what its torch float32 scores are checked equal to, and where.
        tiny: the tiny random checkpoint the matrix test builds.
        works: names of the :data:`CELLS` it scores in.
        options: Reranker keywords it needs (e.g. ``prompt_format``).
        needs: modules the tiny checkpoint or the family needs; without them its cells are skipped.
        also: more tiny checkpoints of the row (other architectures), checked in every cell too.
    """

    title: str
    family: str
    examples: Tuple[str, ...]
    scoring: str
    reference: str
    tiny: Tiny
    works: FrozenSet[str]
    options: Dict[str, Any] = field(default_factory=dict)
    needs: Tuple[str, ...] = ()
    also: Tuple[Tiny, ...] = ()

    @property
    def checkpoints(self) -> Tuple[Tiny, ...]:
        """Every tiny checkpoint the matrix test checks this row on."""
        return (self.tiny, *self.also)

    def status(self, cell: Cell) -> str:
        """``"works"`` or ``"refused"``."""
        return "works" if cell.name in self.works else "refused"


ROWS: Tuple[FamilyRow, ...] = (
    FamilyRow(
        title="Encoder cross-encoders (BERT, XLM-RoBERTa, ELECTRA, DeBERTa-v2)",
        family="cross-encoder",
        examples=(
            "BAAI/bge-reranker-base",
            "BAAI/bge-reranker-v2-m3",
            "cross-encoder/ms-marco-MiniLM-L-6-v2",
            "mixedbread-ai/mxbai-rerank-base-v1",
        ),
        scoring="`*ForSequenceClassification` head: the logit (1 output) or "
        "`logit[1] - logit[0]` (2 outputs)",
        reference="transformers and FlagEmbedding's `FlagReranker` (tests/core, tests/compat)",
        tiny=Tiny("save_model", ("bert",)),
        also=tuple(
            Tiny("save_model", (kind,)) for kind in ("xlm-roberta", "electra", "deberta-v2")
        ),
        works=ALL_CELLS,
    ),
    FamilyRow(
        title="Decoder-type classifiers (Qwen, Llama, GPT-2 `*ForSequenceClassification`)",
        family="cross-encoder",
        examples=("tomaarsen/Qwen3-Reranker-0.6B-seq-cls", "michaelfeil/mxbai-rerank-base-v2-seq"),
        scoring="the classification head's logit at the last token; their key/value cache "
        "cannot be exported, so ONNX and OpenVINO refuse them",
        reference="transformers (tests/families/test_llm_rerankers.py, "
        "tests/families/test_refusals.py)",
        tiny=Tiny("save_decoder", ("qwen3-seqcls",)),
        works=TORCH_CELLS,
    ),
    FamilyRow(
        title="Qwen3-Reranker (decoder LLM, `prompt_format='qwen3'`)",
        family="decoder LLM reranker",
        examples=("Qwen/Qwen3-Reranker-0.6B", "Qwen/Qwen3-Reranker-4B", "Qwen/Qwen3-Reranker-8B"),
        scoring="the model card's prompt; `logit('yes') - logit('no')` at the last position",
        reference="the model card's code (tests/families/test_llm_rerankers.py)",
        tiny=Tiny("save_decoder", ("qwen3",)),
        works=TORCH_CELLS,
    ),
    FamilyRow(
        title="bge-reranker-v2-gemma (decoder LLM, `prompt_format='bge'`)",
        family="decoder LLM reranker",
        examples=("BAAI/bge-reranker-v2-gemma",),
        scoring="FlagEmbedding's `FlagLLMReranker` prompt; the `'Yes'` logit",
        reference="FlagEmbedding's `FlagLLMReranker` (tests/families/test_llm_rerankers.py)",
        tiny=Tiny("save_decoder", ("gemma",)),
        works=TORCH_CELLS,
    ),
    FamilyRow(
        title="mxbai-rerank-v2 (decoder LLM, `prompt_format='mxbai'`)",
        family="decoder LLM reranker",
        examples=("mixedbread-ai/mxbai-rerank-base-v2", "mixedbread-ai/mxbai-rerank-large-v2"),
        scoring="the `mxbai-rerank` package's prompt; `logit('1') - logit('0')` at the last "
        "position. A `qwen2` config does not tell this prompt from others: pass "
        "`prompt_format='mxbai'`",
        reference="the `mxbai-rerank` package's `MxbaiRerankV2` (tests/families/test_mxbai.py)",
        tiny=Tiny("save_decoder", ("qwen2",)),
        works=TORCH_CELLS,
        options={"prompt_format": "mxbai"},
    ),
    FamilyRow(
        title="monoT5 (seq2seq: T5 / mT5 `*ForConditionalGeneration`)",
        family="seq2seq reranker",
        examples=(
            "castorini/monot5-base-msmarco",
            "castorini/monot5-large-msmarco-10k",
            "unicamp-dl/InRanker-base",
        ),
        scoring="`Query: {q} Document: {d} Relevant:`; `logit('▁true') - logit('▁false')` at "
        "the first decoder step (its sigmoid is `rerankers`' `T5Ranker` score)",
        reference="`rerankers`' `T5Ranker` and transformers (tests/families/test_t5.py)",
        tiny=Tiny("save_seq2seq", ("t5",)),
        works=TORCH_CELLS,
        also=(Tiny("save_seq2seq", ("mt5",)),),
    ),
    FamilyRow(
        title="bge-reranker-v2-minicpm-layerwise (layer-wise LLM, `cutoff_layers`)",
        family="layer-wise LLM reranker",
        examples=("BAAI/bge-reranker-v2-minicpm-layerwise",),
        scoring="FlagEmbedding's prompt; the one-logit head of the `cutoff_layers` layer at the "
        "last token (default: the last layer; the layers above it are not run)",
        reference="FlagEmbedding's `LayerWiseFlagLLMReranker` (tests/compat/test_flag_layerwise.py, "
        "tests/families/test_layerwise.py)",
        tiny=Tiny("save_layerwise", ("layerwise",)),
        works=TORCH_CELLS,
    ),
    FamilyRow(
        title="bge-reranker-v2.5-gemma2-lightweight (lightweight LLM, token compression)",
        family="lightweight LLM reranker",
        examples=("BAAI/bge-reranker-v2.5-gemma2-lightweight",),
        scoring="layer-wise heads on Gemma 2; `LightWeightFlagLLMReranker` also takes "
        "`compress_ratio` (passage tokens merged into their mean before each of `compress_layers`)",
        reference="FlagEmbedding's `LightWeightFlagLLMReranker` (tests/compat/test_flag_layerwise.py, "
        "tests/families/test_layerwise.py)",
        tiny=Tiny("save_layerwise", ("lightweight",)),
        works=TORCH_CELLS,
    ),
    FamilyRow(
        title="ColBERT late interaction (PyLate checkpoints: BERT / ModernBERT + Dense)",
        family="late-interaction reranker",
        examples=("lightonai/GTE-ModernColBERT-v1", "answerdotai/answerai-colbert-small-v1"),
        scoring="query (`[Q]`, `[MASK]` expansion) and passage (`[D]`, punctuation skipped) "
        "encoded apart, projected, normalized; MaxSim: sum over query tokens of the best dot "
        "product with a passage token",
        reference="PyLate's `ColBERT.encode` + MaxSim and `rank.rerank`, and transformers "
        "(tests/families/test_colbert.py)",
        tiny=Tiny("save_colbert", ("bert",)),
        works=TORCH_CELLS,
    ),
)


def row(title_start: str) -> FamilyRow:
    """The row whose title starts with ``title_start``."""
    for candidate in ROWS:
        if candidate.title.startswith(title_start):
            return candidate
    raise KeyError(f"no supported-models row starts with {title_start!r}")


def markdown() -> str:
    """The supported-models page: one line per family, ✓ / ✗ per backend cell."""
    lines: List[str] = [
        "# Supported models",
        "",
        "Generated from `crossrank.families.support`, the table that "
        "`tests/families/test_support_matrix.py` checks cell by cell on tiny random checkpoints: "
        "✓ scores equal to the family's torch float32 scores (bfloat16 and int8 within their "
        "rounding), ✗ is refused before any weights load, with an error naming what runs it. "
        "The torch cells are tested on CPU; CUDA and MPS run the same torch code. OpenVINO "
        "computes bfloat16 where the CPU has AVX512-BF16 or AMX, float32 (with a warning) "
        "elsewhere.",
        "",
        "| family | example checkpoints | how it scores | equal to |",
        "| --- | --- | --- | --- |",
    ]
    for entry in ROWS:
        examples = "<br>".join(f"`{e}`" for e in entry.examples)
        lines.append(f"| {entry.title} | {examples} | {entry.scoring} | {entry.reference} |")
    lines += ["", "## Backends", ""]
    lines.append("| family | " + " | ".join(cell.name for cell in CELLS) + " |")
    lines.append("| --- |" + " :-: |" * len(CELLS))
    for entry in ROWS:
        marks = ["✓" if entry.status(cell) == "works" else "✗" for cell in CELLS]
        lines.append(f"| {entry.title} | " + " | ".join(marks) + " |")
    lines += [
        "",
        "`backend=` and `dtype=`/`quantize=` choose the cell, e.g. "
        '`Reranker(model, backend="openvino", quantize="int8")`; see '
        "[Choosing a backend and precision](guides/backends.md).",
        "",
    ]
    return "\n".join(lines)


__all__ = ["ALL_CELLS", "CELLS", "Cell", "FamilyRow", "ROWS", "TORCH_CELLS", "Tiny", "markdown"]
