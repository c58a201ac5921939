"""Does int8 (or bf16) cost ranking quality? nDCG@10 on SciFact, fp32 vs int8 vs bf16, same model.

Reranks the BM25 top-N of SciFact test queries with a trained cross-encoder with torch fp32, ONNX
fp32 and int8, torch bfloat16 and OpenVINO fp32, bf16 and int8, and prints nDCG@10 for each, plus
the largest score difference to torch fp32. Needs the ``eval``, ``onnx`` and ``openvino`` extras
(``--scorers`` picks fewer).

    python -m benchmarks.int8_quality --model runs/minilm-ce --queries 100 --top-n 20
    python -m benchmarks.int8_quality --model runs/minilm-ce --scorers torch openvino-int8
"""

from __future__ import annotations

import argparse

from benchmarks.common import add_output_argument, display_path, write_result
from benchmarks.workload import DATA
from crossrank import Reranker
from crossrank.evaluation import BM25, compute_metrics, load_beir, rerank

SCORERS = {
    "torch": ("torch fp32", {}),
    "onnx": ("ONNX fp32", {"backend": "onnx"}),
    "onnx-int8": ("ONNX int8", {"backend": "onnx", "quantize": "int8"}),
    "torch-bf16": ("torch bf16", {"dtype": "bfloat16"}),
    "openvino": ("OpenVINO fp32", {"backend": "openvino"}),
    "openvino-bf16": ("OpenVINO bf16", {"backend": "openvino", "dtype": "bfloat16"}),
    "openvino-int8": ("OpenVINO int8", {"backend": "openvino", "quantize": "int8"}),
}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="a trained cross-encoder checkpoint dir")
    parser.add_argument("--queries", type=int, default=100, help="SciFact test queries (of 300)")
    parser.add_argument("--top-n", type=int, default=20, help="BM25 candidates per query")
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument(
        "--scorers",
        nargs="+",
        choices=list(SCORERS),
        default=list(SCORERS),
        metavar="SCORER",
        help=f"which to run (torch is always first, the reference): {', '.join(SCORERS)}",
    )
    add_output_argument(parser)
    args = parser.parse_args(argv)

    data = load_beir(str(DATA), "test").subset(args.queries)
    first_stage = BM25(data).search(data.queries, args.top_n)
    rows = {"BM25": first_stage}
    chosen = ["torch"] + [name for name in args.scorers if name != "torch"]
    for label, kwargs in (SCORERS[name] for name in chosen):
        reranker = Reranker(args.model, device="cpu", max_length=args.max_length, **kwargs)
        rows[label] = rerank(reranker, data, first_stage, show_progress=False, desc=label)
    reference = rows["torch fp32"]
    print(f"SciFact test, {len(data.queries)} queries, BM25 top-{args.top_n}, model {args.model}")
    print("| scorer | nDCG@10 | max abs score diff to torch fp32 |\n| --- | ---: | ---: |")
    table = []
    for label, run in rows.items():
        ndcg = compute_metrics(data.qrels, run)["nDCG@10"]
        diff = None
        if label != "BM25":
            diff = max(abs(run[q][d] - reference[q][d]) for q in run for d in run[q])
        table.append({"scorer": label, "nDCG@10": ndcg, "max_abs_score_diff_to_torch_fp32": diff})
        print(f"| {label} | {ndcg:.4f} | {'–' if diff is None else f'{diff:.1e}'} |")
    settings = {
        "model": display_path(args.model),
        "dataset": "SciFact test",
        "queries": len(data.queries),
        "top_n": args.top_n,
        "max_length": args.max_length,
        "scorers": chosen,
    }
    title = "Ranking quality per backend and precision: nDCG@10 on SciFact, same model"
    write_result("int8_quality", title, settings, {"rows": table}, args.output, argv=argv)


if __name__ == "__main__":
    main()
