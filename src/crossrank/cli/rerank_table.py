"""``crossrank rerank-table``: score a Parquet or JSONL table of (query, passage) rows on Ray.

Reads INPUT here, scores it with :func:`crossrank.ray.rerank_dataset` on a local Ray (or
the cluster at ``--ray-address``) and streams the result, in input order, into one OUTPUT file.

>>> main(["rerank-table", "pairs.parquet", "--output", "scored.parquet", "--actors", "4"])
...                                                                       # doctest: +SKIP
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from typing import Optional

from .arguments import add_output_option, check_model
from .options import add_model_options, reranker_options

FORMATS = {".parquet": "parquet", ".pq": "parquet", ".jsonl": "jsonl", ".ndjson": "jsonl"}


def table_format(path: str, argument: str) -> str:
    """``"parquet"`` or ``"jsonl"`` from the file's extension; else a ValueError naming ``argument``."""
    extension = os.path.splitext(path.rstrip("/"))[1].lower()
    if extension not in FORMATS:
        raise ValueError(
            f"{argument} {path!r}: unknown table format; use one of {', '.join(FORMATS)}"
        )
    return FORMATS[extension]


HELP = "score a Parquet/JSONL table of (query, text) rows on Ray (local or a cluster)"
DESCRIPTION = (
    "Score every row of INPUT (Parquet or JSONL, one (query, passage) pair per "
    "row) with --model on Ray Data actors and write OUTPUT (Parquet or JSONL) with a 'score' "
    "column, rows in input order. With --top-k (and --group-column) keep the best rows per "
    "query, with a 'rank' column. Needs pip install 'crossrank[ray]'."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments of ``crossrank rerank-table``."""
    parser.add_argument("input", help="INPUT.parquet | INPUT.jsonl (read on this machine)")
    add_output_option(parser, "OUTPUT.parquet | OUTPUT.jsonl", required=True)
    parser.add_argument("--query-column", default="query")
    parser.add_argument("--text-column", default="text")
    parser.add_argument(
        "--group-column", default=None, help="column naming the query for --top-k (default: query)"
    )
    parser.add_argument("--top-k", type=int, default=None, help="keep the best K rows per query")
    parser.add_argument("--raw", action="store_true", help="raw logits instead of sigmoid scores")
    parser.add_argument(
        "--ray-address",
        default=None,
        help="a running cluster ('auto' or HOST:PORT); default: start a local Ray here",
    )
    parser.add_argument("--actors", type=int, default=1, help="model copies scoring in parallel")
    parser.add_argument("--gpus-per-actor", type=float, default=0)
    parser.add_argument(
        "--cpus-per-actor", type=float, default=1, help="also torch threads per CPU actor"
    )
    parser.add_argument(
        "--block-size", type=int, default=512, help="pairs per block an actor scores"
    )
    parser.add_argument(
        "--max-retries",
        type=int,
        default=3,
        help="tries of a block after the first when its actor dies scoring it; a block that "
        "crashes every time then stops the job (default 3)",
    )
    add_model_options(parser)


def run(args: argparse.Namespace) -> int:
    """Score INPUT into OUTPUT; prints a one-line JSON summary. Errors raise ValueError/ImportError."""
    input_format = table_format(args.input, "INPUT")
    output_format = table_format(args.output, "--output")
    if not os.path.isfile(args.input):
        raise ValueError(f"INPUT {args.input!r} does not exist")
    try:
        import ray
        import ray.data
    except ImportError:
        from ..ray.extra import RAY_INSTALL

        raise ImportError(f"crossrank rerank-table needs Ray Data: {RAY_INSTALL}") from None
    from ..ray import rerank_dataset

    options = reranker_options(args)
    # A model that cannot load fails here, once, in one line: in the actors it would fail in each
    # of them, on every retry, inside Ray's tracebacks. GPU actors may hold devices this machine
    # lacks: their device options are checked where they run.
    check_model(args.model, options, devices_here=not args.gpus_per_actor)
    started_here = not ray.is_initialized()
    if started_here and args.ray_address:
        ray.init(address=args.ray_address)
    elif started_here:  # a local Ray on the loopback, without the dashboard web server
        ray.init(include_dashboard=False, _node_ip_address="127.0.0.1")
    try:
        began = time.perf_counter()
        ds = _read(ray, args.input, input_format, args.block_size)
        scored = rerank_dataset(
            ds,
            model=args.model,
            query_column=args.query_column,
            text_column=args.text_column,
            num_actors=args.actors,
            num_gpus_per_actor=args.gpus_per_actor,
            num_cpus_per_actor=args.cpus_per_actor,
            batch_size=args.block_size,
            reranker_kwargs=options,
            normalize=not args.raw,
            group_column=args.group_column,
            top_k=args.top_k,
            max_retries=args.max_retries,
        )
        try:
            rows = _write(scored, args.output, output_format)
        except ray.exceptions.RayError as error:
            bad_row = _user_error(error)  # bad rows: one clear line, not Ray's traceback
            if bad_row is None:
                raise
            raise bad_row from None
        summary = {
            "output": args.output,
            "rows": rows,
            "seconds": round(time.perf_counter() - began, 2),
        }
        print(json.dumps(summary))
        return 0
    finally:
        if started_here:
            ray.shutdown()


_USER_ERROR = re.compile(r"^(?:ValueError|(?:[\w.]+\.)?PoisonBlockError): (.*)$")


def _user_error(error: BaseException) -> Optional[ValueError]:
    """An actor's error about the rows (a bad row, a block that crashed every try, a bad
    option) from Ray's wrapped traceback, as a ValueError (printed as one line)."""
    found = [m.group(1) for m in map(_USER_ERROR.match, str(error).splitlines()) if m]
    return ValueError(found[-1]) if found else None


def _read(ray, path: str, input_format: str, block_size: int):
    """INPUT read here, on the driver, into a Dataset of blocks of ``block_size`` rows.

    Not with Ray Data's readers: their tasks need a free CPU, and actors may hold every CPU
    (``--actors 2`` on 2 cores), so the job would wait forever. The path only has to exist where
    the command runs; the table has to fit in its memory (1M pairs of ~1 KB: about 1 GB).
    """
    import pyarrow.json
    import pyarrow.parquet as pq

    if input_format == "parquet":
        table = pq.read_table(path)
    else:
        table = pyarrow.json.read_json(path)
    if table.num_rows == 0:
        return ray.data.from_arrow(table)
    return ray.data.from_arrow(
        [table.slice(start, block_size) for start in range(0, table.num_rows, block_size)]
    )


def _write(ds, path: str, output_format: str) -> int:
    """Stream ``ds`` into one file (input order), written to a temporary name then renamed."""
    import pyarrow.parquet as pq

    partial = f"{path}.partial"
    rows = 0
    writer: Optional[pq.ParquetWriter] = None
    try:
        with open(partial, "wb") as stream:
            for table in ds.iter_batches(batch_format="pyarrow", batch_size=None):
                rows += table.num_rows
                if output_format == "parquet":
                    writer = writer or pq.ParquetWriter(stream, table.schema)
                    writer.write_table(table.cast(writer.schema))
                else:
                    for row in table.to_pylist():
                        line = json.dumps(row, ensure_ascii=False, default=str) + "\n"
                        stream.write(line.encode("utf-8"))
            if writer is not None:
                writer.close()
            elif output_format == "parquet":
                print("crossrank rerank-table: the input has no rows", file=sys.stderr)
        os.replace(partial, path)
    finally:
        if os.path.exists(partial):
            os.remove(partial)
    return rows
