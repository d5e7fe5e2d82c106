"""The command line's shared parts: help texts, the one --device flag, helpers only from cli/common.py."""

from __future__ import annotations

import argparse
import ast
from pathlib import Path

import pytest

import cnnlstm.cli
from cnnlstm.cli import build_parser, main

CLI_DIR = Path(cnnlstm.cli.__file__).parent


def subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def expanded_help(parser: argparse.ArgumentParser, action: argparse.Action) -> str:
    """The help of ``action`` exactly as ``--help`` prints it, before line wrapping."""
    return parser._get_formatter()._expand_help(action) if action.help else ""


def test_every_command_states_each_default_once_and_correctly():
    """No "(default: None)" after a default given in words, no "(default: True)" on an off-by-default
    switch, and never two defaults for one flag."""
    checked = 0
    for name, parser in subcommands().items():
        for action in parser._actions:
            text = expanded_help(parser, action)
            where = f"cnnlstm {name} {'/'.join(action.option_strings) or action.dest}: {text!r}"
            assert "(default: None)" not in text and "(default: [])" not in text, where
            assert text.count("(default") <= 1, where
            if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction)):
                assert "(default" not in text, where
            checked += 1
    assert checked > 100


def test_reproduce_help_has_no_none_defaults_and_no_download_is_a_plain_switch(capsys):
    with pytest.raises(SystemExit):
        main(["reproduce", "--help"])
    out = " ".join(capsys.readouterr().out.split())  # unwrapped
    assert "(default: None)" not in out and "(default: True)" not in out
    assert "--no-download never download; fail with instructions when no local copy exists --no-verify" in out
    assert "--seeds N seeds of every model trained (default: the preset's, 3 for the compared pairs) --out" in out


def test_every_device_flag_is_the_shared_one():
    helps = {name: next((a for a in p._actions if "--device" in a.option_strings), None)
             for name, p in subcommands().items()}
    with_device = {name: a for name, a in helps.items() if a is not None}
    assert {"train", "evaluate", "embed", "predict", "reproduce", "sweep"} <= set(with_device)
    for name, action in with_device.items():
        assert action.metavar == "D", name
        assert action.help.startswith("auto, cpu, cuda or cuda:N (default: "), (name, action.help)


@pytest.mark.parametrize("argv", [
    ["evaluate", "no-such-run"], ["embed", "no-such-run"], ["predict", "no-such-run", "x.png"],
    ["reproduce", "--out", "no-such-study"], ["sweep", "model1", "--trials", "1", "--out", "no-such-sweep"],
    ["train", "model1", "--out", "no-such-run"]])
def test_a_bad_device_name_is_one_line_before_any_work(argv, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    rc = main([*argv, "--device", "tpu"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1, err
    assert err[0].startswith(f"cnnlstm {argv[0]}: error: ") and "must be auto, cpu, cuda or cuda:N, got 'tpu'" in err[0]
    assert list(tmp_path.iterdir()) == []  # nothing was created


def test_command_modules_take_shared_helpers_only_from_common():
    """A command module may import cnnlstm.cli and cnnlstm.cli.common, never another command module."""
    for path in sorted(CLI_DIR.glob("*_cmd.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.module:
                assert not node.module.endswith("_cmd"), f"{path.name} imports from {node.module}"
            if isinstance(node, ast.Import):
                assert not any(n.name.endswith("_cmd") for n in node.names), path.name
