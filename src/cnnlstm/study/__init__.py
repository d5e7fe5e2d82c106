"""The study layer: the glue that drives training and measurement over run folders.

- :mod:`~cnnlstm.study.prelude`: opening a finished run for evaluation, the one way;
- :mod:`~cnnlstm.study.experiment`: one run: splits -> model -> fit -> evaluate -> figures;
- :mod:`~cnnlstm.study.exploration`: the ``explore`` and ``embed`` commands' drivers;
- :mod:`~cnnlstm.study.robustness`, :mod:`~cnnlstm.study.explain`: their commands' drivers;
- :mod:`~cnnlstm.study.reproduce`: the study as a list of resumable jobs;
- :mod:`~cnnlstm.study.study_report`: the study's report page;
- :mod:`~cnnlstm.study.sweep`: Optuna sweeps.
"""
