"""The Python API for notebooks and scripts: the commands' steps as functions on paths and values.

Each function calls the same library functions as its command (``cnnlstm train``, ``evaluate``,
``embed``, ``report``), so a run made here is the run the command line would make, in the same
run folder layout (see ``docs/architecture.md``). They are re-exported lazily by :mod:`cnnlstm`::

    import cnnlstm

    run_dir = cnnlstm.train("cnn_lstm", epochs=1, limit_train=5000)
    run = cnnlstm.load_run(run_dir)            # config, model, metrics, history
    cnnlstm.embed(run_dir, samples=2000)       # figures/tsne.png
    cnnlstm.report(run_dir)                    # report.html
"""

from __future__ import annotations

from cnnlstm.api.runs import (
    Run,
    build_report,
    default_report_path,
    embed,
    evaluate,
    explain,
    explore,
    load_run,
    report,
    robustness,
    train,
)
from cnnlstm.api.studies import compare, regimes, reproduce

__all__ = ["Run", "build_report", "compare", "default_report_path", "embed", "evaluate", "explain", "explore", "load_run",
           "regimes", "report", "reproduce", "robustness", "train"]
