"""The study layer, in floors: run drivers, the job engine above them, the studies on top.

- run drivers, one run folder each: :mod:`~cnnlstm.study.prelude` (opening a finished run, the one
  way), :mod:`~cnnlstm.study.experiment` (one run: splits -> model -> fit -> evaluate -> figures),
  :mod:`~cnnlstm.study.exploration` (``explore`` and ``embed``), :mod:`~cnnlstm.study.robustness`,
  :mod:`~cnnlstm.study.explain`, :mod:`~cnnlstm.study.occlusion`;
- :mod:`~cnnlstm.study.engine`: jobs, executors, the one job loop and what a study opens; it knows no study;
- the studies, each with one ``run(...)`` and its report: :mod:`~cnnlstm.study.paper` (``reproduce``),
  :mod:`~cnnlstm.study.compare`, :mod:`~cnnlstm.study.regimes`; and :mod:`~cnnlstm.study.sweep` (Optuna).
"""
