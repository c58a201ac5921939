"""``crossrank train``: fine-tune an encoder into a cross-encoder on BEIR-format train qrels.

Every option but the positional data, ``--model``, ``--output`` and ``--no-progress`` is a field of
:class:`~crossrank.training.config.TrainConfig` of the same name (``--lr``: ``learning_rate``), with
that field's default, so the parser and the config cannot drift apart.

.. code-block:: bash

    crossrank train ../shared/data/scifact --model sentence-transformers/all-MiniLM-L6-v2 \\
        --output runs/minilm-scifact --max-length 128 --lr 1e-4 --time-budget-minutes 28
"""

from __future__ import annotations

import argparse
import dataclasses
import json

from .arguments import (
    add_data_argument,
    add_no_progress_option,
    add_output_option,
    require_data_directory,
)

# Help of the TrainConfig fields whose flag says too little by itself (a % is written %%: argparse
# formats help strings when --help is asked for).
_FIELD_HELP = {
    "negatives": "per positive",
    "negatives_depth": "BM25 depth to mine",
    "queries_per_step": "batch size",
    "max_steps": "overrides --epochs",
    "eval_queries": "held-out train queries",
    "eval_split": "take the held-out queries from this split (e.g. dev); none is held out of SPLIT",
    "eval_every": "steps",
    "time_budget_minutes": "stop when this budget is spent",
    "budget_clock": "wall: wall-clock time; cpu: CPU time / torch threads (fair on a shared machine)",
    "device": "auto (CUDA, then MPS, then CPU; default), cpu, cuda, cuda:N or mps",
    "freeze_layers": "freeze the embeddings and the lowest N layers: cheaper steps (default 0: none)",
    "dropout": "every dropout of the model set to P while training; 0 = off, 20-30%% cheaper steps "
    "on a CPU (default: the model's own, 0.1 for BERT-likes)",
    "bf16": "mixed precision: bfloat16 autocast, float32 weights; steps about half the cost on a "
    "CPU with AVX512-BF16/AMX (and on recent GPUs), slower on other CPUs",
    "save_every": "checkpoint every N steps (default: never)",
    "resume": "continue from --output's last checkpoint",
    "overwrite": "delete what --output holds before training",
    "teacher": "distill from this reranker's raw scores (any model crossrank loads), or 'bm25': "
    "the collection's BM25, standardized per group (a local folder named bm25: ./bm25)",
    "distill_weight": "loss = (1 - W) x label loss + W x distillation loss (default 1: teacher only)",
    "distill_temperature": "kl: softmax temperature of both sides (default 1)",
    "keep": "save the weights of the best held-out evaluation (default) or the last step's",
    "select_metric": "held-out nDCG@10 that picks the best: the model alone (default) or fused "
    "with BM25",
    "early_stopping_patience": "stop after N held-out evaluations without improvement "
    "(default: never)",
    "early_stopping_min_delta": "an improvement must exceed this (default 0)",
}
_METAVARS = {
    "freeze_layers": "N",
    "dropout": "P",
    "teacher": "MODEL",
    "distill_weight": "W",
    "distill_temperature": "T",
    "early_stopping_patience": "N",
    "early_stopping_min_delta": "D",
}
_FLAGS = {"learning_rate": "--lr"}
# Set from the command line's own arguments (data, --model, --output, --no-progress), not as --field
_NOT_OPTIONS = ("model", "data_dir", "output_dir", "show_progress")


HELP = "fine-tune an encoder into a cross-encoder on BEIR-format train qrels"
DESCRIPTION = (
    "Fine-tune --model (any Hugging Face encoder or cross-encoder) into a 1-logit "
    "cross-encoder on a BEIR-format dataset's train qrels, with BM25 hard negatives, and save "
    "it (model + tokenizer + training_log.json) to --output."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments of ``crossrank train``."""
    from ..training import config  # no torch: --help stays fast

    add_data_argument(parser)
    parser.add_argument("--model", required=True, help="base model: hub id or local directory")
    add_output_option(parser, "directory to save the checkpoint", required=True)
    choices = {
        "loss": config.LOSSES,
        "budget_clock": config.CLOCKS,
        "distill_loss": config.DISTILL_LOSSES,
        "keep": config.KEEPS,
        "select_metric": config.SELECT_METRICS,
    }
    for field in dataclasses.fields(config.TrainConfig):
        if field.name in _NOT_OPTIONS:
            continue
        flag = _FLAGS.get(field.name, "--" + field.name.replace("_", "-"))
        options = dict(dest=field.name, default=field.default, help=_FIELD_HELP.get(field.name))
        if field.name in _METAVARS:
            options["metavar"] = _METAVARS[field.name]
        if field.name in choices:
            options["choices"] = choices[field.name]
        if isinstance(field.default, bool):
            options["action"] = "store_true"
        else:
            options["type"] = _value_type(field)
        parser.add_argument(flag, **options)
    add_no_progress_option(parser)


def _value_type(field: dataclasses.Field):
    """``int``, ``float`` or ``str``: what the field's annotation (a string, as the module has
    ``from __future__ import annotations``) holds, ``Optional[...]`` or not."""
    annotation = str(field.type)
    for kind in (int, float):
        if annotation in (kind.__name__, f"Optional[{kind.__name__}]"):
            return kind
    return str


def run(args: argparse.Namespace) -> int:
    """Train; prints a one-line JSON summary (output, steps, minutes, held-out nDCG@10, ...)."""
    from ..loading import open_checkpoint
    from ..training.loop import TrainConfig, train

    options = {
        field.name: getattr(args, field.name)
        for field in dataclasses.fields(TrainConfig)
        if field.name not in _NOT_OPTIONS
    }
    config = TrainConfig(
        model=args.model,
        data_dir=args.data,
        output_dir=args.output,
        show_progress=not args.no_progress,
        **options,
    )
    # Bad options, data or base model fail here, in one line, before anything heavy loads.
    config.check()
    require_data_directory(args.data)
    open_checkpoint(args.model)
    result = train(config)
    summary = {
        "output": result.output_dir,
        "steps": result.steps,
        "minutes": round(result.seconds / 60, 2),
        "cpu_minutes": round(result.cpu_seconds / 60, 2),
        "stopped_by": result.stopped_by,
        "held_out_nDCG@10": result.evals[-1] if result.evals else None,
        "best": result.best,
        "kept_step": result.kept_step,
    }
    if result.resumed_from:
        summary["resumed_from"] = result.resumed_from
    print(json.dumps(summary))
    return 0
