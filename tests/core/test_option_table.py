"""One option table: Settings' field metadata gives the defaults, the score-cache key and the CLI."""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import subprocess
import sys

import pytest
import torch

from crossrank import Reranker
from crossrank.cli.options import (
    add_model_options,
    flagged_options,
    reranker_from_args,
    reranker_options,
)
from crossrank.settings import DEFAULTS, SCORE_FIELDS, Settings, model_options


def test_reranker_takes_exactly_the_table_options_with_the_table_defaults():
    parameters = dict(inspect.signature(Reranker.__init__).parameters)
    parameters.pop("self")
    assert list(parameters) == [option.name for option in model_options()]
    assert {name: p.default for name, p in parameters.items()} == dict(DEFAULTS)


def test_every_option_but_use_fp16_is_a_settings_field():
    fields = {f.name for f in dataclasses.fields(Settings)}
    stored = {o.name for o in model_options() if o.stored}
    assert stored == fields - {"devices"}  # devices: resolved from device
    assert [o.name for o in model_options() if not o.stored] == ["use_fp16"]
    for option in model_options():
        assert option.help and (option.flag is None or option.flag.startswith("--"))


def _settings(**changes):
    base = {"model": "org/model", "device": torch.device("cpu"), "dtype": torch.float32}
    return Settings(**{**base, **changes})


def _key_as_before(s: Settings, max_length=None, query_max_length=None) -> dict:
    """The hand-picked key Settings.score_key returned before it was derived from the table."""
    if max_length is None and query_max_length is None:
        max_length, query_max_length = s.max_length, s.query_max_length
    return {
        "model": s.model,
        "backend": s.backend,
        "quantize": s.quantize,
        "dtype": str(s.dtype).replace("torch.", ""),
        "max_length": max_length,
        "query_max_length": query_max_length,
        "instruction": s.instruction,
        "prompt_format": s.prompt_format,
        "long_documents": s.long_documents,
        "stride": s.stride,
    }


REPRESENTATIVE = [
    {},
    {"max_length": 64, "query_max_length": 16, "dtype": torch.bfloat16},
    {"long_documents": "maxp", "stride": 32, "instruction": "find it", "prompt_format": "qwen3"},
    {"backend": "onnx", "quantize": "int8"},
    {"backend": "openvino", "dtype": torch.bfloat16, "cache_size": 8, "batch_size": 2},
]


@pytest.mark.parametrize("changes", REPRESENTATIVE)
def test_the_score_key_holds_the_same_values_as_before(changes):
    settings = _settings(**changes)
    key = settings.score_key()
    assert dict(zip(SCORE_FIELDS, key)) == _key_as_before(settings)
    assert len(key) == len(SCORE_FIELDS)
    for lengths in ((32, None), (None, 8), (48, 12)):
        got = dict(zip(SCORE_FIELDS, settings.score_key(*lengths)))
        assert got == _key_as_before(settings, *lengths)


def test_every_field_that_changes_a_score_changes_the_key_and_no_other_does():
    base = _settings()
    other_values = {
        "model": "org/other",
        "dtype": torch.bfloat16,
        "max_length": 256,
        "query_max_length": 64,
        "instruction": "other task",
        "long_documents": "maxp",
        "stride": 64,
        "prompt_format": "bge",
        "backend": "openvino",
        "quantize": None,  # below, with a backend that takes it
        "batch_size": 4,
        "show_progress_bar": True,
        "trust_remote_code": True,
        "cache_size": 100,
        "calibration": "auto",
        "compile": True,
        "device": torch.device("cpu"),
    }
    for option in model_options():
        if not option.stored or option.name == "quantize":
            continue
        changed = base.replace(**{option.name: other_values[option.name]})
        assert (changed.score_key() != base.score_key()) == option.affects_scores, option.name
    onnx = base.replace(backend="onnx")
    assert onnx.replace(quantize="int8").score_key() != onnx.score_key()


def _parser(**kwargs) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="test")
    add_model_options(parser, **kwargs)
    return parser


def test_add_model_options_offers_every_flagged_option_with_the_table_default():
    flagged = flagged_options()
    assert {o.name for o in flagged} == {o.name for o in model_options() if o.flag}
    expected_flags = {
        "--model", "--device", "--dtype", "--max-length", "--query-max-length", "--batch-size",
        "--trust-remote-code", "--instruction", "--long-documents", "--stride", "--prompt-format",
        "--backend", "--quantize", "--cache-size", "--calibration", "--compile",
    }  # fmt: skip
    assert {o.flag for o in flagged} == expected_flags
    parser = _parser()
    actions = {a.dest: a for a in parser._actions if a.option_strings}
    args = parser.parse_args([])
    for option in flagged:
        assert actions[option.name].option_strings == [option.flag]
        assert getattr(args, option.name) == option.default
        assert actions[option.name].help == option.help
        if option.choices is not None:
            assert tuple(actions[option.name].choices) == tuple(option.choices)
        if isinstance(option.default, bool):
            assert actions[option.name].nargs == 0  # an on/off flag


def test_flags_parse_into_reranker_options():
    args = _parser().parse_args(
        "--model m --device cpu --dtype bfloat16 --max-length 64 --query-max-length 16 "
        "--batch-size 4 --trust-remote-code --long-documents maxp --stride 8 --prompt-format bge "
        "--backend openvino --quantize int8 --cache-size 10 --calibration auto --compile".split()
    )
    assert args.model == "m"
    assert reranker_options(args) == {
        "device": "cpu",
        "dtype": "bfloat16",
        "max_length": 64,
        "query_max_length": 16,
        "batch_size": 4,
        "trust_remote_code": True,
        "instruction": None,
        "long_documents": "maxp",
        "stride": 8,
        "prompt_format": "bge",
        "backend": "openvino",
        "quantize": "int8",
        "cache_size": 10,
        "calibration": "auto",
        "compile": True,
    }
    assert reranker_options(args, batch_size=1, show_progress_bar=True)["batch_size"] == 1
    with pytest.raises(SystemExit):
        _parser().parse_args(["--backend", "tensorrt"])


def test_a_subcommand_can_define_an_option_itself():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", required=True, help="base model")
    add_model_options(parser, exclude=["model"])
    args = parser.parse_args(["--model", "x"])
    assert "model" not in reranker_options(args) and args.model == "x"
    with pytest.raises(ValueError, match="no flagged model option"):
        add_model_options(argparse.ArgumentParser(), exclude=["show_progress_bar"])


def test_default_flags_give_the_default_settings(tmp_path):
    options = reranker_options(_parser().parse_args([]))
    assert Settings.create(tmp_path, **options) == Settings.create(tmp_path)


def test_reranker_from_args_builds_the_reranker_the_flags_describe(bert_dir):
    args = _parser().parse_args(["--model", bert_dir, "--max-length", "48", "--cache-size", "5"])
    reranker = reranker_from_args(args, batch_size=3)
    assert (
        reranker.settings == Reranker(bert_dir, max_length=48, cache_size=5, batch_size=3).settings
    )


def test_the_table_and_the_flags_import_no_torch():
    code = (
        "import sys, argparse\n"
        "from crossrank.cli.options import add_model_options\n"
        "add_model_options(argparse.ArgumentParser())\n"
        "print(sorted(m for m in ('torch', 'transformers', 'numpy') if m in sys.modules))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"
