"""``crossrank calibrate``: fit raw logit → P(relevant) on judged queries and measure it on others.

Needs the ``eval`` extra (BM25, data loading) and the ``calibration`` extra (scikit-learn) to fit;
measuring a saved calibration (``--calibration FILE``) needs no scikit-learn.

.. code-block:: bash

    crossrank calibrate ../shared/data/scifact --split train --model runs/minilm-scifact \\
        --max-length 128 --top-n 20
"""

from __future__ import annotations

import argparse
import json
import os
import random
from dataclasses import asdict, replace
from typing import TYPE_CHECKING, Dict, List, Optional, Sequence, Tuple

from ..calibration.names import CALIBRATION_FILE, METHODS
from .arguments import (
    add_json_option,
    add_judged_data_options,
    add_no_progress_option,
    add_output_option,
    require_data_directory,
)
from .options import add_model_options, reranker_from_args

if TYPE_CHECKING:  # pragma: no cover
    from ..calibration.model import Calibration
    from ..reranker import Reranker

TABLE_THRESHOLDS = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
Scores = List[List[float]]  # per query, the raw logits of its candidates
Labels = List[List[int]]


HELP = "fit calibrated probabilities of relevance and choose a threshold from judged data"
DESCRIPTION = (
    "Score each judged query's BM25 candidates of a BEIR-format dataset with "
    "--model, fit raw logit -> P(relevant) on part of the queries and measure it on the rest "
    "(split by query, seeded): ECE and Brier score before (plain sigmoid) and after, a "
    "threshold table and a suggested threshold. Saves the calibration as JSON next to the "
    f"model ({CALIBRATION_FILE}) or at -o."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments of ``crossrank calibrate``."""
    add_judged_data_options(parser, split="dev", top_n=20)
    parser.add_argument("--method", choices=METHODS[:2], default="platt")
    parser.add_argument(
        "--target-precision",
        type=float,
        default=None,
        help="suggest the lowest threshold reaching this precision (default: the max-F1 one)",
    )
    parser.add_argument(
        "--held-out", type=float, default=0.3, help="share of queries to measure on (0.3)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the query split")
    parser.add_argument(
        "--calibration",
        dest="saved_calibration",  # not the model option of that name: see add_model_options below
        default=None,
        metavar="FILE",
        help="measure this saved calibration on every query of the split instead of fitting one",
    )
    add_output_option(parser, f"where to save ({CALIBRATION_FILE})")
    add_json_option(parser)
    add_no_progress_option(parser)
    # Every model option but the Reranker's --calibration (calibrated probabilities): this command
    # fits on raw logits, and its own --calibration names a saved calibration to measure.
    add_model_options(parser, exclude=("calibration",))


def split_queries(
    query_ids: Sequence[str], held_out: float, seed: int
) -> Tuple[List[str], List[str]]:
    """(fit, held-out) query ids: a seeded shuffle, ``held_out`` of them (at least one) measured.

    >>> split_queries(["a", "b", "c", "d"], 0.5, seed=0)
    (['b', 'd'], ['c', 'a'])
    """
    if not 0.0 < held_out < 1.0:
        raise ValueError(f"--held-out must be between 0 and 1, got {held_out}")
    if len(query_ids) < 2:
        raise ValueError(f"need at least 2 judged queries to fit and measure, got {len(query_ids)}")
    shuffled = sorted(query_ids)
    random.Random(seed).shuffle(shuffled)
    n_held = min(max(1, round(len(shuffled) * held_out)), len(shuffled) - 1)
    return shuffled[n_held:], shuffled[:n_held]


def score_candidates(
    args: argparse.Namespace, reranker: Optional[Reranker] = None
) -> Tuple[str, Dict[str, Tuple[List[float], List[int]]]]:
    """The data's name and split, and per judged query the raw logits and 0/1 labels of its
    BM25 top-N candidates (unjudged candidates count as not relevant).

    ``reranker`` scores them; by default the one the model options of ``args`` describe.
    """
    from ..evaluation.reranking import BM25, load_beir, rerank

    if args.top_n < 1:
        raise ValueError(f"--top-n must be >= 1, got {args.top_n}")
    data = load_beir(args.data, args.split).subset(args.max_queries)
    candidates = BM25(data).search(data.queries, args.top_n)
    reranker = reranker if reranker is not None else reranker_from_args(args)
    logits = rerank(reranker, data, candidates, show_progress=not args.no_progress)
    per_query = {}
    for query_id, scores in logits.items():
        judged = data.qrels[query_id]
        per_query[query_id] = (
            list(scores.values()),
            [int(judged.get(doc_id, 0) > 0) for doc_id in scores],
        )
    return f"{data.name} {args.split}", per_query


def measure(calibration: Calibration, logits: Scores, labels: Labels) -> Dict[str, object]:
    """ECE and Brier before (plain sigmoid) and after ``calibration`` on these queries."""
    from ..calibration.model import Calibration, brier_score, expected_calibration_error

    flat_logits = [x for q in logits for x in q]
    flat_labels = [y for q in labels for y in q]
    before = Calibration("sigmoid").probabilities(flat_logits)
    after = calibration.probabilities(flat_logits)
    return {
        "queries": len(logits),
        "pairs": len(flat_labels),
        "relevant": sum(flat_labels),
        "ece_before": expected_calibration_error(before, flat_labels),
        "ece_after": expected_calibration_error(after, flat_labels),
        "brier_before": brier_score(before, flat_labels),
        "brier_after": brier_score(after, flat_labels),
    }


def _rows(calibration: Calibration, logits: Scores, labels: Labels) -> List[dict]:
    from ..calibration.thresholds import threshold_table

    probabilities = [calibration.probabilities(q) if q else [] for q in logits]
    cuts = sorted(set(TABLE_THRESHOLDS) | {calibration.suggested_threshold or 0.5})
    return [asdict(row) for row in threshold_table(probabilities, labels, cuts)]


def _format(value: Optional[float], width: int, digits: int = 3) -> str:
    if value is None or value != value:  # None or NaN: nothing kept
        return f"{'-':>{width}}"
    return f"{value:>{width}.{digits}f}"


def _table(report: dict) -> str:
    held = report["measured"]
    lines = [report["title"], "", f"{'':<22}{'ECE':>8}{'Brier':>8}"]
    lines.append(f"{'before (sigmoid)':<22}{held['ece_before']:>8.4f}{held['brier_before']:>8.4f}")
    after = f"after ({report['method']})"
    lines.append(f"{after:<22}{held['ece_after']:>8.4f}{held['brier_after']:>8.4f}")
    lines += [
        "",
        f"{'threshold':>9}{'precision':>11}{'recall':>8}{'kept/query':>12}{'none kept':>11}",
    ]
    for row in report["thresholds"]:
        lines.append(
            f"{row['threshold']:>9.3f}{_format(row['precision'], 11)}{_format(row['recall'], 8)}"
            f"{row['kept_per_query']:>12.2f}{row['share_empty']:>11.1%}"
        )
    lines += ["", report["suggestion"]]
    if report.get("saved"):
        lines.append(f"saved: {report['saved']}")
    return "\n".join(lines)


def _suggestion_line(threshold, target, rows, basis) -> str:
    if threshold is None and target is None:
        return "no suggested threshold"
    if threshold is None:
        return f"no threshold reaches precision {target} on the {basis}: none suggested"
    how = f"precision >= {target}" if target is not None else "max F1"
    row = next(r for r in rows if abs(r["threshold"] - threshold) < 1e-12)
    return (
        f"suggested threshold: {threshold:.3f} ({how} on the {basis}); on the measured queries: "
        f"precision {_format(row['precision'], 0)}, recall {_format(row['recall'], 0)}, "
        f"{row['kept_per_query']:.2f} kept per query, {row['share_empty']:.1%} left with none"
    )


def _output_path(args: argparse.Namespace) -> str:
    """Where the fitted calibration goes: ``-o``, else next to a local model.

    Asked once the model has loaded, so that a model path that does not exist is reported as
    such, not as a missing ``-o``.
    """
    if args.output:
        return args.output
    if os.path.isdir(args.model):
        return os.path.join(args.model, CALIBRATION_FILE)
    raise ValueError(
        f"--model {args.model!r} is a hub id, not a local directory, so the calibration cannot be "
        "saved next to it: say where to save it with -o"
    )


def run(args: argparse.Namespace) -> int:
    """Run ``crossrank calibrate`` with parsed ``args``; prints the report, saves the JSON."""
    from ..calibration.model import Calibration  # numpy: imported to run, not to build --help

    target = args.target_precision
    if target is not None and not 0.0 < target <= 1.0:
        raise ValueError(f"--target-precision must be in (0, 1], got {target}")
    # Fail on bad options, a bad file, a bad model or nowhere to save before the minutes of scoring.
    saved = args.saved_calibration and Calibration.load(args.saved_calibration)
    if saved is None and not 0.0 < args.held_out < 1.0:
        raise ValueError(f"--held-out must be between 0 and 1, got {args.held_out}")
    require_data_directory(args.data)
    reranker = reranker_from_args(args)
    if saved is None:
        output = _output_path(args)
    name, per_query = score_candidates(args, reranker)
    if saved is not None:
        calibration, measured_ids = saved, list(per_query)
        threshold, basis = saved.suggested_threshold, "calibration queries"
        if target is not None:  # re-chosen on these queries: what the target costs here
            threshold, basis = _suggest(saved, per_query, measured_ids, target), "measured queries"
        title = f"{name}: {saved.describe()} measured on all {len(measured_ids)} queries"
    else:
        fit_ids, measured_ids = split_queries(list(per_query), args.held_out, args.seed)
        calibration = Calibration.fit(
            [x for q in fit_ids for x in per_query[q][0]],
            [y for q in fit_ids for y in per_query[q][1]],
            args.method,
            source=f"{name}, {len(fit_ids)} queries, BM25 top-{args.top_n}",
        )
        threshold, basis = _suggest(calibration, per_query, fit_ids, target), "calibration queries"
        title = (
            f"{name}: {args.method} fitted on {len(fit_ids)} queries, measured on "
            f"{len(measured_ids)} held-out queries (seed {args.seed}), BM25 top-{args.top_n}"
        )
    logits = [per_query[q][0] for q in measured_ids]
    labels = [per_query[q][1] for q in measured_ids]
    calibration = replace(calibration, suggested_threshold=threshold, report={})
    rows = _rows(calibration, logits, labels)
    report = {
        "title": title,
        "method": calibration.method,
        "model": args.model,
        "measured": measure(calibration, logits, labels),
        "thresholds": rows,
        "suggested_threshold": threshold,
        "target_precision": target,
        "suggestion": _suggestion_line(threshold, target, rows, basis),
    }
    if saved is None:
        calibration = replace(calibration, report=_json_ready(report))
        report["saved"] = calibration.save(output)
    print(json.dumps(_json_ready(report)) if args.json else _table(report))
    return 0


def _suggest(calibration, per_query, query_ids, target) -> Optional[float]:
    from ..calibration.thresholds import suggest_threshold

    return suggest_threshold(
        [calibration.probabilities(per_query[q][0]) for q in query_ids],
        [per_query[q][1] for q in query_ids],
        target,
    )


def _json_ready(value):
    """NaN (a precision with nothing kept) becomes null: JSON has no NaN."""
    if isinstance(value, dict):
        return {k: _json_ready(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_ready(v) for v in value]
    if isinstance(value, float) and value != value:
        return None
    return value
