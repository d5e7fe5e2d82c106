"""``cnnlstm report``: run, explore and sweep folders -> one self-contained HTML page + Markdown."""

from __future__ import annotations

from cnnlstm.cli import add_command

EXAMPLES = """\
  cnnlstm report runs/m1                          # runs/m1/report.html and report.md
  cnnlstm report runs/m1-s0 runs/m1-s1 runs/m1-s2 # seeds of one config -> mean ± std; runs/report.html
  cnnlstm report runs/*/ --explore runs/explore --out study.html --title "Fashion-MNIST study"
  cnnlstm report runs/explore                     # the dataset exploration alone
  cnnlstm report runs/sweep-flagship runs/best    # a sweep folder (sweep.json) beside a run
"""


def add_parser(sub) -> None:
    p = add_command(sub, "report", help="write an HTML + Markdown report of run folders",
                    description="Write one self-contained HTML file (CSS and figures inline, no scripts, "
                                "nothing fetched from the network) and its Markdown twin (report.md, "
                                "figures by relative path) for run folders (config.json), exploration "
                                "folders (stats.json) and sweep folders (sweep.json): configs, test "
                                "metrics, per-class tables, figures, training curves, t-SNE embeddings "
                                "and their quality, a side-by-side comparison where runs that differ "
                                "only in the seed are shown as mean ± std, and the published reference "
                                "accuracies beside the measured ones. Inputs from different datasets "
                                "are refused.",
                    examples=EXAMPLES)
    p.add_argument("inputs", nargs="+", metavar="RUN_DIR", help="run, explore or sweep folders")
    p.add_argument("--out", metavar="FILE", default=None,
                   help="HTML file (default: report.html in the folder when one is given, else runs/report.html); "
                        "the Markdown twin is written beside it with the .md suffix")
    p.add_argument("--title", metavar="T", default=None, help="page title (default names the run or counts inputs)")
    p.add_argument("--explore", metavar="DIR", action="append", default=[],
                   help="also show this `cnnlstm explore` folder (repeatable)")
    p.set_defaults(func=run)


def run(args) -> int:
    from cnnlstm import api

    result = api.build_report(args.inputs, out=args.out, title=args.title, explore=args.explore)
    if not args.quiet:
        size = result["html"].stat().st_size / 1e6
        print(f"report: {result['html']} ({size:.1f} MB, self-contained) and {result['md']}")
        print(f"{result['runs']} run(s) in {result['experiments']} experiment(s); sections: "
              + ", ".join(result["sections"]))
    return 0
