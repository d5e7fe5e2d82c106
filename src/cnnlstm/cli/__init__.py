"""The ``cnnlstm`` command line: the only place that parses arguments, seeds, picks devices and run folders.

Each subcommand lives in its own module of this package with two functions: ``add_parser(sub)``
registers its argparse parser (with examples in the help) and ``run(args) -> int`` carries it out.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import re
import sys

from cnnlstm._version import __version__
from cnnlstm.errors import UserError

# Order is the order of `cnnlstm --help`.
COMMANDS = ("data", "models", "train", "evaluate", "robustness", "explain", "explore", "embed", "report",
            "compare", "reproduce", "regimes", "predict", "export", "sweep")

EPILOG = """examples:
  cnnlstm data                          # where the dataset is, counts, checksums
  cnnlstm train cnn_lstm --preset fast  # the flagship, its fast CPU recipe
  cnnlstm compare cnn_lstm cnn_twin     # two models, one recipe, 3 seeds: the matched comparison
  cnnlstm reproduce --preset quick      # the whole study and its report
  cnnlstm COMMAND --help                # details and examples of each command
"""


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the examples' line breaks and states each flag's default once.

    ``(default: X)`` is added only where the help does not already give the default in words, and
    never for a default that says nothing: None (not set), an on/off switch, an empty list.
    """

    STATED = re.compile(r"\(default\b|\bdefault:|[;,] default\b", re.IGNORECASE)

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        silent = default is None or default is argparse.SUPPRESS or isinstance(default, bool) or default == []
        positional_required = not action.option_strings and action.nargs not in (argparse.OPTIONAL,
                                                                                  argparse.ZERO_OR_MORE)
        if silent or positional_required or self.STATED.search(text):
            return text
        return f"{text} (default: %(default)s)"


class CliParser(argparse.ArgumentParser):
    """The parser of ``cnnlstm`` and of every subcommand.

    A usage error is one line, ``cnnlstm train: error: ...``, then a pointer to ``--help``
    instead of the whole usage text, with exit status 2. A mistyped choice or option gets a
    "did you mean". Long options are never abbreviated (``--epoch`` is not ``--epochs``), so a
    later flag cannot change what an old command line means.
    """

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)
        self._last_namespace: argparse.Namespace | None = None

    def parse_known_args(self, args=None, namespace=None):
        namespace, extras = super().parse_known_args(args, namespace)
        self._last_namespace = namespace  # which subcommand ran, for the hint on unknown options
        return namespace, extras

    def error(self, message: str):
        """Print ``PROG: error: MESSAGE`` and ``run 'PROG --help' for usage``; exit 2."""
        command = self._subcommand()
        if command is not None and message.startswith("unrecognized arguments: "):
            command.error(message)  # argparse finds them at the top; they belong to the subcommand
        message = f"{message}{self._hint(message)}"
        self.exit(2, f"{self.prog}: error: {message}\nrun '{self.prog} --help' for usage\n")

    def _hint(self, message: str) -> str:
        """`` (did you mean ...?)`` for a mistyped choice or option, else ``""``."""
        choice = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)$", message)
        if choice:
            options = [c.strip().strip("'\"") for c in choice[2].split(",")]
            return did_you_mean(choice[1], options)
        unknown = re.match(r"unrecognized arguments: (.*)$", message)
        if unknown:
            options = self._option_strings()
            for token in unknown[1].split():
                hint = did_you_mean(token.split("=", 1)[0], options) if token.startswith("--") else ""
                if hint:
                    return hint
        return ""

    def _option_strings(self) -> list[str]:
        return [o for o in self._option_string_actions if o.startswith("--")]

    def _subcommand(self) -> CliParser | None:
        """The subcommand's parser, once the command line named one."""
        sub = next((a for a in self._actions if isinstance(a, argparse._SubParsersAction)), None)
        command = getattr(self._last_namespace, "command", None)
        return sub.choices[command] if sub is not None and command in sub.choices else None


def did_you_mean(word: str, options) -> str:
    """`` (did you mean 'X'?)`` when one of ``options`` is close to ``word``, else ``""``."""
    import difflib

    close = difflib.get_close_matches(word, list(options), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def build_parser() -> argparse.ArgumentParser:
    """The ``cnnlstm`` parser with every subcommand of this checkout."""
    parser = CliParser(
        prog="cnnlstm", description="CNN-LSTM hybrids and CNN baselines on Fashion-MNIST.",
        epilog=EPILOG, formatter_class=HelpFormatter)
    parser.add_argument("--version", action="version", version=f"cnnlstm {__version__}")
    add_common_flags(parser)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=CliParser)
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"cnnlstm.cli.{name}_cmd")
        except ModuleNotFoundError as exc:
            if exc.name != f"cnnlstm.cli.{name}_cmd":
                raise
            continue  # a command not built yet in this checkout
        module.add_parser(sub)
    return parser


def add_common_flags(parser: argparse.ArgumentParser) -> None:
    """Flags every command accepts (before or after the command name)."""
    parser.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show tracebacks of user errors and debug logging")
    parser.add_argument("--quiet", "-q", action="store_true", default=argparse.SUPPRESS,
                        help="only warnings and errors; no progress display")


def add_command(sub, name: str, help: str, description: str, examples: str) -> argparse.ArgumentParser:
    """Create a subcommand parser with the shared flags and an examples epilog."""
    p = sub.add_parser(name, help=help, description=description, epilog="examples:\n" + examples,
                       formatter_class=HelpFormatter, allow_abbrev=False)
    add_common_flags(p)
    return p


def setup_logging(debug: bool, quiet: bool) -> None:
    level = logging.DEBUG if debug else logging.WARNING if quiet else logging.INFO
    from rich.logging import RichHandler

    handler = RichHandler(show_path=debug, show_time=False, markup=False, rich_tracebacks=False)
    logging.basicConfig(level=level, format="%(message)s", handlers=[handler], force=True)
    # Libraries' own INFO lines would land among a command's output (alembic announces its
    # migration context when an Optuna storage is first opened, which once corrupted the TOML that
    # `sweep --best` prints): only their warnings are shown.
    for noisy in ("matplotlib", "PIL", "optuna", "numba", "urllib3", "torch.distributed", "openTSNE", "alembic",
                  "sqlalchemy", "distributed", "dask", "tornado", "bokeh"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))
    # Dask configures its own loggers when distributed is first imported (a study's executor, later
    # than this): its logging config says the level, which a user's own DASK_ variable still overrides.
    os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", logging.getLevelName(max(level, logging.WARNING)).lower())


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``cnnlstm`` command; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # what `train --nproc` relaunches
    args.debug = getattr(args, "debug", False)
    args.quiet = getattr(args, "quiet", False)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    setup_logging(args.debug, args.quiet)
    try:
        return int(args.func(args) or 0)
    except UserError as exc:
        if args.debug:
            raise
        print(f"cnnlstm {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"cnnlstm {args.command}: interrupted", file=sys.stderr)
        return 130
