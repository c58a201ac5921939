"""Guard rails on the package's shape: no import cycle, no overlong module, one set of model options.

These read the source (with ``ast``) or build the command line's parsers; nothing is loaded.
"""

from __future__ import annotations

import argparse
import ast
from pathlib import Path
from typing import Dict, List, Set

import pytest

import crossrank

PACKAGE = Path(crossrank.__file__).parent
MAX_LINES = 400
# Modules allowed over MAX_LINES, each with the reason it is not split
LONG_MODULES: Dict[str, str] = {
    "crossrank.reranker": "the public front: about half of it is the docstrings the API "
    "reference is generated from (every constructor option, an example per method)",
}
# The subcommands that load a model, and so take cli/options.py's model options
MODEL_SUBCOMMANDS = ("rank", "eval", "calibrate", "serve", "rerank-table")
# Model options a subcommand leaves out, with the reason
LEFT_OUT = {
    ("calibrate", "--calibration"): "calibrate fits on raw logits, and its own --calibration "
    "names a saved calibration to measure",
}


def package_modules(package: Path) -> Dict[str, Path]:
    """Every module of ``package`` (a directory) by dotted name: ``crossrank.cli.rank``."""
    modules = {}
    for path in sorted(package.rglob("*.py")):
        parts = list(path.relative_to(package.parent).with_suffix("").parts)
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


MODULES = package_modules(PACKAGE)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imported_modules(
    name: str, path: Path, deferred: bool, modules: Dict[str, Path] = MODULES
) -> Set[str]:
    """The crossrank modules ``name`` imports: at module level, and with ``deferred`` also inside
    functions. ``if TYPE_CHECKING:`` imports never run, so they do not count.

    ``from package import name`` counts as importing ``package.name`` where that is a module,
    else ``package`` (which defines the name).
    """
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found: Set[str] = set()

    def add(target: str) -> None:
        while target and target not in modules:  # crossrank.x.SomeClass -> crossrank.x
            target = target.rpartition(".")[0]
        if target and target != name:
            found.add(target)

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                for statement in child.orelse:
                    visit(ast.Module(body=[statement], type_ignores=[]))
                continue
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                if deferred:
                    visit(child)
                continue
            if isinstance(child, ast.Import):
                for alias in child.names:
                    add(alias.name)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    parent = package[: len(package) - (child.level - 1)]
                    base = ".".join(parent + ([child.module] if child.module else []))
                for alias in child.names:
                    submodule = f"{base}.{alias.name}"
                    add(submodule if submodule in modules else base)
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8")))
    return found


def import_cycles(deferred: bool, modules: Dict[str, Path] = MODULES) -> List[List[str]]:
    """Every set of modules that import each other (Tarjan's strongly connected components of
    more than one module), each named by one cycle through it."""
    graph = {
        name: imported_modules(name, path, deferred, modules) for name, path in modules.items()
    }
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: List[str] = []
    cycles: List[List[str]] = []

    def connect(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        for target in sorted(graph[module]):
            if target not in index:
                connect(target)
                low[module] = min(low[module], low[target])
            elif target in stack:
                low[module] = min(low[module], index[target])
        if low[module] == index[module]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == module:
                    break
            if len(component) > 1:
                cycles.append(_one_cycle(sorted(component), graph))

    for module in graph:
        if module not in index:
            connect(module)
    return cycles


def _one_cycle(component: List[str], graph: Dict[str, Set[str]]) -> List[str]:
    """A path a -> b -> ... -> a through ``component``, to name in the failure message."""
    members = set(component)
    path = [component[0]]
    seen = {component[0]}
    while True:
        following = sorted(graph[path[-1]] & members)
        back = component[0] in following
        if back and len(path) > 1:
            return path + [component[0]]
        step = next((m for m in following if m not in seen), None)
        if step is None:
            return path + [component[0]]
        path.append(step)
        seen.add(step)


def test_the_cycle_finder_sees_relative_deferred_and_package_imports(tmp_path):
    # A finder that reports no cycle must be one that could: a package with a cycle closed by a
    # relative import inside a function, through the package's __init__.
    package = tmp_path / "demo"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("from .sub import worker\n")
    (package / "sub" / "__init__.py").write_text("")
    (package / "sub" / "worker.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..helpers import H\n"
        "def run():\n    from .. import helpers\n"
    )
    (package / "helpers.py").write_text("import demo.sub.worker as w\n")
    modules = package_modules(package)
    assert import_cycles(deferred=False, modules=modules) == []
    assert import_cycles(deferred=True, modules=modules) == [
        ["demo.helpers", "demo.sub.worker", "demo.helpers"]
    ]
    # if TYPE_CHECKING: imports never run
    assert (
        imported_modules("demo.sub.worker", package / "sub" / "worker.py", False, modules) == set()
    )


def test_no_import_cycle_at_module_level():
    cycles = import_cycles(deferred=False)
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_no_import_cycle_through_imports_inside_functions():
    # A deferred import that closes a cycle (a -> b at module level, b -> a in a function) works
    # today and breaks when someone moves it to the top; it also means the two modules are one.
    cycles = import_cycles(deferred=True)
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_no_module_is_longer_than_the_limit_without_a_reason():
    lengths = {n: len(p.read_text(encoding="utf-8").splitlines()) for n, p in MODULES.items()}
    too_long = {n: lines for n, lines in lengths.items() if lines > MAX_LINES}
    unexplained = {n: lines for n, lines in too_long.items() if n not in LONG_MODULES}
    assert not unexplained, f"modules over {MAX_LINES} lines: {unexplained}"
    stale = set(LONG_MODULES) - set(too_long)
    assert not stale, f"listed as long but no longer over {MAX_LINES} lines: {sorted(stale)}"


def _model_flags(parser: argparse.ArgumentParser) -> Set[str]:
    """The flags in ``parser``'s model-options group (none without one)."""
    from crossrank.cli.options import TITLE

    groups = [g for g in parser._action_groups if g.title == TITLE]
    return {flag for g in groups for action in g._group_actions for flag in action.option_strings}


def test_every_subcommand_that_loads_a_model_offers_the_same_model_options():
    from crossrank.cli.commands import _build_parser
    from crossrank.cli.options import flagged_options

    commands = next(
        a for a in _build_parser()._actions if isinstance(a, argparse._SubParsersAction)
    )
    expected = {option.flag for option in flagged_options()}
    assert {"--model", "--device", "--backend", "--quantize", "--cache-size"} <= expected
    for name in MODEL_SUBCOMMANDS:
        offered = _model_flags(commands.choices[name])
        left_out = {flag for (command, flag) in LEFT_OUT if command == name}
        assert offered == expected - left_out, (
            f"crossrank {name}: missing {sorted(expected - left_out - offered)}, "
            f"extra {sorted(offered - expected)}"
        )
    # train's --model is the base it fine-tunes: not a Reranker's model options
    assert not _model_flags(commands.choices["train"])


@pytest.mark.parametrize("command", MODEL_SUBCOMMANDS)
def test_model_options_reach_the_reranker(command):
    # The flags parse into Reranker keywords the same way in every subcommand.
    from crossrank.cli.commands import _build_parser
    from crossrank.cli.options import reranker_options

    required = {
        "rank": ["docs.txt", "-q", "x"],
        "eval": ["data"],
        "calibrate": ["data"],
        "serve": [],
        "rerank-table": ["in.jsonl", "-o", "out.jsonl"],
    }[command]
    flags = ["--model", "m", "--backend", "onnx", "--quantize", "int8", "--batch-size", "4"]
    args = _build_parser().parse_args([command, *required, *flags])
    options = reranker_options(args)
    assert args.model == "m"
    assert (options["backend"], options["quantize"], options["batch_size"]) == ("onnx", "int8", 4)
