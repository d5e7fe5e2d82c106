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
    assert ("--seeds N|auto seeds of every model the preset trains (default: the preset's, 3 for the compared pairs; "
            "auto: until every hybrid-vs-control interval decides)") in out
    assert "--max-seeds N the cap of --seeds auto (default 10)" in out


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


# --------------------------------------------------------------------------- usage errors (issue 34, item 5)


def bad_values(name: str, parser: argparse.ArgumentParser) -> list[list[str]]:
    """Command lines of ``cnnlstm NAME`` that argparse itself must refuse: each choice flag with a value
    not among its choices, each typed flag with a value its type rejects, and an unknown option."""
    fillers = []
    for action in parser._actions:
        if not action.option_strings and action.nargs in (None, argparse.ONE_OR_MORE):
            fillers.append("x")  # required positionals (RUN_DIR, IMAGE ...): the error must come from the flag
    cases = []
    for action in parser._actions:
        if not action.option_strings or action.nargs == 0:
            continue
        flag = max(action.option_strings, key=len)
        if action.choices:
            cases.append([name, *fillers, flag, "no-such-choice"])
        elif action.type in (int, float) or getattr(action.type, "__module__", "") == "cnnlstm.cli.common":
            cases.append([name, *fillers, flag, "zz"])
    return [*cases, [name, *fillers, "--no-such-flag"]]


def test_every_usage_error_is_one_line_and_a_pointer_to_help(capsys):
    """No usage dump: ``cnnlstm CMD: error: ...`` then ``run 'cnnlstm CMD --help' for usage``, exit 2,
    for a bad choice, a bad value and an unknown option of every command."""
    parser = build_parser()
    checked = set()
    for name, sub in subcommands().items():
        for argv in bad_values(name, sub):
            with pytest.raises(SystemExit) as exit_:
                parser.parse_args(argv)
            err = capsys.readouterr().err.strip().splitlines()
            assert exit_.value.code == 2, argv
            assert len(err) == 2, (argv, err)
            assert err[0].startswith(f"cnnlstm {name}: error: "), (argv, err)
            assert err[1] == f"run 'cnnlstm {name} --help' for usage", (argv, err)
            checked.add(name)
    assert checked == set(subcommands())


@pytest.mark.parametrize("argv, words", [
    (["train", "cnn_lstm", "--preset", "quick"], "argument --preset: invalid choice: 'quick'"),
    (["reproduce", "--preset", "qiuck"], "invalid choice: 'qiuck' (choose from 'best', 'paper', 'quick') "
                                         "(did you mean 'quick'?)"),
    (["predict", "runs/x", "a.png", "--topk", "0"], "argument --topk: expected a positive integer, got 0"),
    (["train", "model1", "--epoch", "1"], "unrecognized arguments: --epoch 1 (did you mean '--epochs'?)"),
    (["trian"], "argument COMMAND: invalid choice: 'trian'"),
])
def test_the_usage_errors_newcomers_meet(argv, words, capsys):
    """The issue's own examples through ``main``; a long option is never abbreviated (``--epoch``
    is not ``--epochs``), and a near miss gets a "did you mean"."""
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_.value.code == 2 and len(err) == 2, err
    assert words in err[0], err
    where = f"cnnlstm {argv[0]}" if argv[0] != "trian" else "cnnlstm"
    assert err[0].startswith(f"{where}: error: ") and err[1] == f"run '{where} --help' for usage"


def test_no_parser_takes_abbreviated_options():
    parser = build_parser()
    assert parser.allow_abbrev is False
    for name, sub in subcommands().items():
        assert sub.allow_abbrev is False, name
    with pytest.raises(SystemExit):
        parser.parse_args(["sweep", "model1", "--data-d", "x"])  # once read as --data-dir


# --------------------------------------------------------------------------- the data flags (issue 34, item 4)

#: Commands that load no dataset, and why; every other command takes --data and --image-size.
NO_DATASET = {
    "models": "lists architectures: builds each model on a blank input",
    "predict": "reads image files and prepares them as the run's data was (recorded in the run folder)",
    "export": "writes the model's weights and the run's preprocessing card; no images are read",
    "report": "reads finished run, explore and sweep folders, never the images",
}


def test_every_command_that_loads_data_takes_the_data_flags():
    commands = subcommands()
    assert set(NO_DATASET) <= set(commands)
    for name, parser in commands.items():
        options = set(parser._option_string_actions)
        data_flags = {"--data", "--image-size", "--data-dir", "--no-download", "--no-verify"}
        if name in NO_DATASET:
            assert not options & data_flags, f"{name} loads no dataset ({NO_DATASET[name]}) yet has data flags"
        else:
            assert data_flags <= options, f"cnnlstm {name} lacks {sorted(data_flags - options)}"


def test_sweep_takes_data_and_image_size_and_only_the_data_flags_given():
    from cnnlstm.cli.sweep_cmd import runtime_overrides

    args = build_parser().parse_args(["sweep", "model1", "--trials", "1", "--data", "pets", "--image-size", "32"])
    assert runtime_overrides(args) == {"data": "pets", "image_size": 32}  # --set download=... still holds
    args = build_parser().parse_args(["sweep", "model1", "--no-download", "--data-dir", "d"])
    assert runtime_overrides(args) == {"data_dir": "d", "download": False}
