"""Write the benchmark pages and their plots from the JSON results in ``benchmarks/results/``.

Run by mkdocs-gen-files at build time (mkdocs.yml). Every figure on the pages is read from a
result file (schema ``crossrank-benchmark/1``, see ``benchmarks/common.py``), and every table and
plot names the file, machine, date and command that produced it: a number is written once, by the
benchmark that measured it. Pages: ``benchmarks/results.md`` (all results, newest first) and one
page per benchmark, ``benchmarks/<name>.md``, with matplotlib plots as PNG files beside it.

By hand: ``python scripts/docs/gen_benchmarks.py --stdout`` prints the pages' Markdown.
"""

from __future__ import annotations

import io
import re
import sys
import textwrap
from collections import defaultdict
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from benchmarks.common import RESULTS_DIR, load_results  # noqa: E402

# Which numeric column a bar chart shows, by preference: speed first, then quality, then latency.
PREFERRED = (
    r"x_?flag|vs_flag|speedup|ratio|times",
    r"pairs_per_s|pairs/s|throughput|per_s",
    r"ndcg",
    r"p50|median|seconds|latency|ms",
)
PERCENTILES = ("p50", "p90", "p95", "p99")


def _numeric(rows: List[Dict[str, Any]], key: str) -> bool:
    values = [row.get(key) for row in rows]
    return all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in values if v is not None
    ) and any(v is not None for v in values)


def _label_key(rows: List[Dict[str, Any]]) -> Optional[str]:
    """The text column(s) that tell rows apart (joined into a ``_label`` column when several)."""
    text = [k for k in rows[0] if all(isinstance(row.get(k), str) for row in rows)]
    varying = [k for k in text if len({row[k] for row in rows}) > 1]
    if len(varying) > 1:
        for row in rows:
            row.setdefault("_label", " · ".join(row[k] for k in varying))
        return "_label"
    return (varying or text or [None])[0]


def _value_key(rows: List[Dict[str, Any]], label: Optional[str]) -> Optional[str]:
    numeric = [k for k in rows[0] if k != label and _numeric(rows, k)]
    for pattern in PREFERRED:
        for key in numeric:
            if re.search(pattern, key, re.I):
                return key
    return numeric[0] if numeric else None


def _percentile_keys(rows: List[Dict[str, Any]]) -> List[str]:
    return [
        k
        for k in rows[0]
        if any(k.lower().startswith(p) for p in PERCENTILES) and _numeric(rows, k)
    ]


def plot(record: Dict[str, Any], name: str, rows: List[Dict[str, Any]]) -> Optional[bytes]:
    """A PNG of one table: lines over ``concurrency``, percentile bars, or one bar per row."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    label = _label_key(rows)
    concurrency = next(
        (k for k in rows[0] if "concurrency" in k.lower() and _numeric(rows, k)), None
    )
    percentiles = _percentile_keys(rows)
    value = _value_key(rows, label)
    if value is None and not percentiles:
        return None
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(rows) + 1.8 if not concurrency else 4))
    if concurrency and value:
        speeds = [k for k in rows[0] if re.search(PREFERRED[1], k, re.I) and _numeric(rows, k)]
        groups: Dict[str, Dict[float, List[float]]] = defaultdict(lambda: defaultdict(list))
        for row in rows:
            for key in speeds or [value]:
                if row.get(key) is not None:
                    name = f"{row[label]} · {key}" if label else key
                    groups[name][row[concurrency]].append(row[key])
        for group, points in groups.items():  # the median of the rounds at each concurrency
            xs = sorted(points)
            ys = [sorted(points[x])[len(points[x]) // 2] for x in xs]
            ax.plot(xs, ys, marker="o", label=group)
        ax.set_xlabel(concurrency)
        ax.set_ylabel("pairs/s" if speeds else value)
        ax.legend(fontsize=7)
        ax.set_ylim(bottom=0)
    elif percentiles and label:
        height = 0.8 / len(percentiles)
        for i, key in enumerate(percentiles):
            ax.barh(
                [j + i * height for j in range(len(rows))],
                [row.get(key) or 0 for row in rows],
                height,
                label=key,
            )
        ax.set_yticks(
            [j + 0.4 - height / 2 for j in range(len(rows))],
            [str(row[label]) for row in rows],
            fontsize=8,
        )
        ax.invert_yaxis()
        ax.legend(fontsize=8)
        ax.set_xlabel("latency (ms)" if all(k.endswith("_ms") for k in percentiles) else "latency")
    else:
        labels = [str(row[label]) if label else str(i + 1) for i, row in enumerate(rows)]
        values = [row.get(value) or 0 for row in rows]
        ax.barh(range(len(rows)), values, color="#3f51b5")
        ax.set_yticks(range(len(rows)), labels, fontsize=8)
        ax.invert_yaxis()
        ax.set_xlabel(value)
        for i, v in enumerate(values):
            ax.text(v, i, f" {v:g}", va="center", fontsize=7)
    machine = record["machine"]
    title = "\n".join(textwrap.wrap(record["title"], 90))
    ax.set_title(
        f"{title}\n{machine.get('cpu') or ''} {machine.get('gpu') or ''} · {record['date'][:10]}",
        fontsize=8,
    )
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    return buffer.getvalue()


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:g}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def table(rows: List[Dict[str, Any]]) -> List[str]:
    keys: List[str] = []
    for row in rows:
        keys += [k for k in row if k not in keys and k != "_label"]
    lines = ["| " + " | ".join(keys) + " |", "|" + " --- |" * len(keys)]
    lines += ["| " + " | ".join(_cell(row.get(k)) for k in keys) + " |" for row in rows]
    return lines


def record_section(
    record: Dict[str, Any], images: Dict[str, bytes], level: str = "##"
) -> List[str]:
    machine = record["machine"]
    stem = Path(record["file"]).stem
    flags = ", ".join(machine.get("cpu_flags") or []) or "none of the listed ones"
    lines = [
        f"{level} {record['title']}",
        "",
        f"- **Result file**: `benchmarks/results/{record['file']}` ({record['source']})",
        f"- **Date**: {record['date']}",
        f"- **Machine**: {machine.get('cpu')}; CPU flags: {flags}; "
        f"{machine.get('logical_cpus')} logical CPUs; GPU: {machine.get('gpu') or 'none'}",
        f"- **Command**: `{record['command']}`"
        if record["command"]
        else "- **Command**: not recorded",
        "- **Versions**: "
        + (
            ", ".join(f"{k} {v}" for k, v in record["versions"].items() if k != "git_commit")
            or "not recorded"
        ),
    ]
    if record.get("series"):
        lines.append(
            f"- **Series**: {record['series']}"
            + (" (newest)" if record.get("newest") else " (superseded)")
        )
    if record.get("settings"):
        lines.append(
            "- **Settings**: " + ", ".join(f"`{k}={v}`" for k, v in record["settings"].items())
        )
    lines.append("")
    scalars = {k: v for k, v in record["figures"].items() if not isinstance(v, list)}
    for name, rows in record["figures"].items():
        if not isinstance(rows, list):
            continue
        if name != "rows":
            lines += [f"**{name}**", ""]
        png = plot(record, name, rows)
        if png:
            image = f"plots/{stem}-{name}.png"
            images[image] = png
            lines += [f"![{record['title']}: {name}]({image})", ""]
        lines += table(rows) + [""]
    if scalars:
        lines += table([scalars]) + [""]
    for note in record.get("notes", []):
        lines.append(f"> {note}")
        lines.append(">")
    if record.get("notes"):
        lines[-1] = ""
    return lines


def pages(records: List[Dict[str, Any]]) -> Tuple[Dict[str, str], Dict[str, bytes]]:
    """Markdown pages (path -> text) and plot images (path -> PNG bytes) under benchmarks/."""
    by_benchmark: Dict[str, List[Dict[str, Any]]] = defaultdict(list)
    for record in records:
        by_benchmark[record["benchmark"]].append(record)
    images: Dict[str, bytes] = {}
    out: Dict[str, str] = {}
    index = [
        "# All results",
        "",
        "Every figure below is read from a JSON result file in `benchmarks/results/` when the site "
        "is built, with the machine, date and command that produced it. A record that a newer "
        "run of the same measurement superseded is marked so.",
        "",
    ]
    if not records:
        index.append(
            "No result files yet: run a maintained benchmark (`python -m benchmarks.NAME`)."
        )
    else:
        index += [
            "| benchmark | what | date | machine | source |",
            "| --- | --- | --- | --- | --- |",
        ]
        for record in sorted(records, key=lambda r: r["date"], reverse=True):
            machine = record["machine"]
            where = machine.get("gpu") or machine.get("cpu") or "?"
            stale = "" if record.get("newest", True) else " (superseded)"
            index.append(
                f"| [{record['benchmark']}]({record['benchmark']}.md) | {_cell(record['title'])}{stale} "
                f"| {record['date'][:10]} | {_cell(where)} | {_cell(record['source'])} |"
            )
    out["benchmarks/results.md"] = "\n".join(index) + "\n"
    for name, group in by_benchmark.items():
        group = sorted(group, key=lambda r: (not r.get("newest", True), r["date"]), reverse=False)
        group.sort(key=lambda r: r["date"], reverse=True)
        group.sort(key=lambda r: not r.get("newest", True))
        lines = [f"# Benchmark: `{name}`", "", f"{len(group)} result file(s), newest first.", ""]
        page_images: Dict[str, bytes] = {}
        for record in group:
            lines += record_section(record, page_images)
        images.update({f"benchmarks/{k}": v for k, v in page_images.items()})
        out[f"benchmarks/{name}.md"] = "\n".join(lines) + "\n"
    return out, images


def main() -> None:
    records = load_results(RESULTS_DIR) if RESULTS_DIR.is_dir() else []
    texts, images = pages(records)
    if "--stdout" in sys.argv:
        for path, text in texts.items():
            print(f"<!-- {path} -->\n{text}")
        return
    import mkdocs_gen_files

    for path, text in texts.items():
        with mkdocs_gen_files.open(path, "w") as page:
            page.write(text)
    for path, data in images.items():
        with mkdocs_gen_files.open(path, "wb") as image:
            image.write(data)


main()
