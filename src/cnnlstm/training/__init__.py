"""The training layer: one model fitted on one on-device tensor.

- :mod:`~cnnlstm.training.loop`: the epoch loop, exact checkpoint/resume state, signals, NaN stop;
- :mod:`~cnnlstm.training.optim`: optimizers and per-step learning-rate schedules;
- :mod:`~cnnlstm.training.losses`: cross-entropy and the multi-class L2-SVM loss;
- :mod:`~cnnlstm.training.distributed`: torchrun / DistributedDataParallel.

It imports data, models and the base modules, never measure, reporting, deploy, study or cli.
"""
