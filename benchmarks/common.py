"""What every maintained benchmark shares: the machine, the versions, and one JSON result writer.

Importing this module imports nothing beyond the standard library (so a docs build can read the
results without torch); ``machine()`` and ``versions()`` look packages up by their metadata.

Result files
------------
Each maintained benchmark writes one JSON object (default ``benchmarks/results/NAME-<UTC time>.json``,
``--output`` to change) with ``write_result``; ``load_results`` reads and validates a folder of them.
Schema ``crossrank-benchmark/1``, every key required unless marked optional:

- ``schema``: ``"crossrank-benchmark/1"``.
- ``benchmark``: the module that measured it (``"throughput"``, ``"serve_load"``,
  ``"experiments.cpu_routes"``, ...) or the crossrank subcommand (``"calibrate"``).
- ``title``: one line saying what was measured.
- ``command``: the exact command line (``python -m benchmarks.NAME ...``); ``null`` only in a record
  converted from notes that recorded none.
- ``date``: UTC, ISO 8601 (``2026-12-06T23:10:00Z``; a converted record may give the day only).
- ``machine``: ``cpu`` (model name), ``cpu_flags`` (those of ``SPEED_FLAGS`` the CPU has; in a
  converted record, those its notes name),
  ``logical_cpus``, ``memory_gib``, ``gpu`` (name or ``null``); optional ``os``,
  ``load_average``, ``recorded_as`` (a converted record's own words). Unknown values are ``null``.
- ``versions``: package -> version (``python``, ``torch``, ``transformers``, ``onnxruntime``,
  ``openvino``, ``crossrank``, ``git_commit``; those not installed are left out).
- ``settings``: the benchmark's options and workload (model, pairs, max_length, ...).
- ``figures``: name -> a table (a non-empty list of rows, each a flat dict of str, number, bool
  or null) or a scalar; at least one table. The main table is ``rows``.
- ``source``: ``"measured"``, or ``"RESULTS.md, <section>, measured <date>"`` for a converted one.
- optional ``env``: the environment variables that change speed (``OMP_NUM_THREADS``,
  ``CROSSRANK_*``, ``ONEDNN_*``, ...), as set.
- optional ``notes``: a list of sentences (caveats, what the run showed).
- optional ``series`` and ``newest``: records that measured the same thing at different times share
  a ``series`` name; exactly one of them has ``newest: true``.

Example::

    from benchmarks.common import load_results
    for record in load_results():
        print(record["file"], record["benchmark"], record["date"], record["machine"]["cpu"])
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = Path(__file__).resolve().parent / "results"
SCHEMA = "crossrank-benchmark/1"
SPEED_FLAGS = (
    "avx2",
    "avx512f",
    "avx512_bf16",
    "avx512_vnni",
    "avx512_fp16",
    "amx_bf16",
    "amx_int8",
    "amx_tile",
)
PACKAGES = ("torch", "transformers", "onnxruntime", "openvino", "crossrank")
SPEED_ENV_PREFIXES = ("OMP_", "MKL_", "ONEDNN_", "DNNL_", "ATEN_", "CROSSRANK_", "CUDA_VISIBLE")
REQUIRED = {
    "schema": str,
    "benchmark": str,
    "title": str,
    "command": (str, type(None)),
    "date": str,
    "machine": dict,
    "versions": dict,
    "settings": dict,
    "figures": dict,
    "source": str,
}
MACHINE_KEYS = ("cpu", "cpu_flags", "logical_cpus", "memory_gib", "gpu")
SCALAR = (str, int, float, bool, type(None))


def machine() -> Dict[str, Any]:
    """This machine: CPU model and speed-relevant flags, cores, memory, GPU, OS, load.

    >>> sorted(machine())[:3]
    ['cpu', 'cpu_flags', 'gpu']
    """
    cpu, flags = platform.processor() or platform.machine(), []
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            lines = handle.read().splitlines()
        cpu = next(
            (ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("model name")), cpu
        )
        found = next((ln.split(":", 1)[1].split() for ln in lines if ln.startswith("flags")), [])
        flags = [flag for flag in SPEED_FLAGS if flag in found]
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cpu_flags": flags,
        "logical_cpus": os.cpu_count(),
        "memory_gib": _memory_gib(),
        "gpu": _gpu_name(),
        "os": f"{platform.system()} {platform.release()}",
        "load_average": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
    }


def _memory_gib() -> Optional[float]:
    try:
        with open("/proc/meminfo", encoding="utf-8") as handle:
            kib = next(int(line.split()[1]) for line in handle if line.startswith("MemTotal"))
        return round(kib / 2**20, 1)
    except (OSError, StopIteration, ValueError):
        return None


def _gpu_name() -> Optional[str]:
    torch = sys.modules.get("torch")  # only if the benchmark imported it: no torch import here
    if torch is not None and torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    if shutil.which("nvidia-smi"):
        done = subprocess.run(
            ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
            capture_output=True,
            text=True,
        )
        names = done.stdout.strip().splitlines()
        return names[0] if done.returncode == 0 and names else None
    return None


def versions(packages: Iterable[str] = PACKAGES) -> Dict[str, str]:
    """Python, the installed ``packages`` (missing ones left out) and the git commit of the tree.

    >>> "python" in versions(())
    True
    """
    found = {"python": platform.python_version()}
    for package in packages:
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            pass
    done = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True
    )
    if done.returncode == 0:
        found["git_commit"] = done.stdout.strip()
    return found


def command_line(benchmark: str, argv: Optional[Sequence[str]] = None) -> str:
    """The command that ran ``benchmark``, as ``python -m benchmarks.NAME ARGS``."""
    args = sys.argv[1:] if argv is None else list(argv)
    return shlex.join(["python", "-m", f"benchmarks.{benchmark}", *args])


def display_path(path: Path | str) -> str:
    """``path`` relative to the repository root when inside it (results then say ``runs/x``)."""
    resolved = Path(path).resolve()
    try:
        return str(resolved.relative_to(ROOT))
    except ValueError:
        return str(path)


def percentile(values: Sequence[float], pct: float, method: str = "linear") -> float:
    """The ``pct``-th percentile (0-100): ``linear`` as numpy's default, or ``nearest`` rank.

    >>> percentile([1, 2, 3, 4], 50), percentile([1, 2, 3, 4], 50, "nearest")
    (2.5, 3)
    """
    if not values:
        raise ValueError("percentile of no values")
    ordered = sorted(values)
    position = (len(ordered) - 1) * pct / 100
    if method == "nearest":
        return ordered[min(len(ordered) - 1, int(round(position)))]
    if method != "linear":
        raise ValueError(f"method must be 'linear' or 'nearest', not {method!r}")
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def add_output_argument(parser) -> None:
    """``--output``: where ``write_result`` writes (a .json file, or a folder)."""
    parser.add_argument(
        "--output",
        type=Path,
        default=RESULTS_DIR,
        help="JSON result file, or a folder for an auto-named one (default benchmarks/results/)",
    )


def write_result(
    benchmark: str,
    title: str,
    settings: Dict[str, Any],
    figures: Dict[str, Any],
    output: Optional[Path] = None,
    notes: Sequence[str] = (),
    argv: Optional[Sequence[str]] = None,
) -> Path:
    """Write one result of ``benchmark`` (see the module docstring) and return its path.

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = write_result("demo", "one figure", {"pairs": 4}, {"rows": [{"x": 1}]}, Path(tmp))
    ...     load_results(tmp)[0]["figures"]["rows"]
    [{'x': 1}]
    """
    now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    record = {
        "schema": SCHEMA,
        "benchmark": benchmark,
        "title": title,
        "command": command_line(benchmark, argv),
        "date": now.isoformat().replace("+00:00", "Z"),
        "machine": machine(),
        "versions": versions(),
        "settings": settings,
        "figures": figures,
        "source": "measured",
        "env": {k: v for k, v in os.environ.items() if k.startswith(SPEED_ENV_PREFIXES)},
    }
    if notes:
        record["notes"] = list(notes)
    problems = validate_result(record)
    if problems:
        raise ValueError(f"{benchmark} result: " + "; ".join(problems))
    path = Path(output if output is not None else RESULTS_DIR)
    if path.suffix != ".json":
        path = path / f"{benchmark}-{now.strftime('%Y%m%dT%H%M%SZ')}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=1, allow_nan=False) + "\n", encoding="utf-8")
    print(f"result written: {path}", file=sys.stderr)
    return path


def validate_result(record: Any) -> List[str]:
    """The ways ``record`` breaks the schema (an empty list when it is valid).

    >>> validate_result({"schema": SCHEMA})[0]
    "missing 'benchmark'"
    """
    if not isinstance(record, dict):
        return ["not a JSON object"]
    problems = [f"missing {key!r}" for key in REQUIRED if key not in record]
    problems += [
        f"{key!r} is {type(record[key]).__name__}"
        for key, kind in REQUIRED.items()
        if key in record and not isinstance(record[key], kind)
    ]
    if problems:
        return problems
    if record["schema"] != SCHEMA:
        problems.append(f"schema {record['schema']!r}, expected {SCHEMA!r}")
    try:
        datetime.datetime.fromisoformat(record["date"].replace("Z", "+00:00"))
    except ValueError:
        problems.append(f"date {record['date']!r} is not ISO 8601")
    problems += [f"machine has no {key!r}" for key in MACHINE_KEYS if key not in record["machine"]]
    if not isinstance(record["machine"].get("cpu_flags", []), (list, type(None))):
        problems.append("machine.cpu_flags is not a list (or null: not recorded)")
    tables = 0
    for name, value in record["figures"].items():
        if isinstance(value, list):
            tables += 1
            if not value or not all(
                isinstance(row, dict) and all(isinstance(v, SCALAR) for v in row.values())
                for row in value
            ):
                problems.append(f"figures.{name} is not a non-empty list of flat rows")
        elif not isinstance(value, SCALAR):
            problems.append(f"figures.{name} is neither a table nor a scalar")
    if not tables:
        problems.append("figures has no table")
    if "newest" in record and not isinstance(record["newest"], bool):
        problems.append("newest is not true/false")
    if ("series" in record) != ("newest" in record):
        problems.append("series and newest go together")
    if not isinstance(record.get("notes", []), list):
        problems.append("notes is not a list")
    return problems


def load_results(folder: Path | str = RESULTS_DIR) -> List[Dict[str, Any]]:
    """Every ``*.json`` result in ``folder``, validated, oldest first; each gains ``file`` (its name).

    Raises ``ValueError`` naming the file and the problem when one breaks the schema, or when a
    ``series`` has not exactly one ``newest`` record.
    """
    records, problems = [], []
    for path in sorted(Path(folder).glob("*.json")):
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as error:
            problems.append(f"{path.name}: not JSON ({error})")
            continue
        found = validate_result(record)
        if found:
            problems.append(f"{path.name}: " + "; ".join(found))
            continue
        records.append({**record, "file": path.name})
    newest: Dict[str, List[str]] = {}
    for record in records:
        if "series" in record:
            newest.setdefault(record["series"], [])
            if record["newest"]:
                newest[record["series"]].append(record["file"])
    problems += [
        f"series {series!r} has {len(files)} newest records ({', '.join(files) or 'none'}), not 1"
        for series, files in newest.items()
        if len(files) != 1
    ]
    if problems:
        raise ValueError(f"invalid benchmark results in {folder}: " + " | ".join(problems))
    return sorted(records, key=lambda record: (record["date"], record["file"]))
