"""The plan's study (``cnnlstm reproduce``): every model of the research plan over seeds, the
matched controls, ablations and analyses, run resumably into one folder, and its report.

- :mod:`~cnnlstm.study.paper.plan`: the models, presets, ablations and the jobs they make;
- :mod:`~cnnlstm.study.paper.runner`: :func:`run` and :func:`run_study`;
- :mod:`~cnnlstm.study.paper.report`, :mod:`~cnnlstm.study.paper.tables`,
  :mod:`~cnnlstm.study.paper.sections`: the report.

Each job writes its own folder and is skipped when that folder is complete, so rerunning the same
command after an interruption continues where it stopped.
"""

from __future__ import annotations

import importlib

__all__ = ["ABLATIONS", "STUDY_PRESETS", "StudyPreset", "plan_jobs", "run", "run_study", "study_preset",
           "write_study_report"]

# Where each public name lives, imported on first use (PEP 562): the CLI builds its parser from
# plan's preset names alone, and `cnnlstm --help` should not wait for torch and matplotlib.
_HOME = {"ABLATIONS": "plan", "STUDY_PRESETS": "plan", "StudyPreset": "plan", "plan_jobs": "plan",
         "study_preset": "plan", "write_study_report": "report", "run": "runner", "run_study": "runner"}


def __getattr__(name: str):
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_HOME[name]}"), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
