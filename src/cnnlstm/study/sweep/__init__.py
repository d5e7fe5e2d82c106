"""Hyper-parameter sweeps: Optuna studies whose trials are ordinary run folders.

- :mod:`cnnlstm.study.sweep.space`: the search space (:class:`Param`, parsing, the built-in space);
- :mod:`cnnlstm.study.sweep.storage`: storage URLs, RDB storages and trial heartbeats;
- :mod:`cnnlstm.study.sweep.search`: sampler, pruner, the worker loop (:func:`run_sweep`) and the
  objective (see its docstring for the design);
- :mod:`cnnlstm.study.sweep.results`: ``sweep.json``, importances and the best trial's config.

The figures are :func:`cnnlstm.reporting.figures.plot_trials` and :func:`cnnlstm.reporting.figures.plot_importances`;
a config is written as TOML/YAML/JSON by :func:`cnnlstm.config.dump_config`.
"""

from cnnlstm.study.sweep.results import best_config, param_importances, sweep_summary, write_outputs
from cnnlstm.study.sweep.search import (
                                 RUN_FILES,
                                 SweepSettings,
                                 adopt_previous_attempt,
                                 base_config,
                                 best_val_acc,
                                 is_surplus,
                                 make_pruner,
                                 make_sampler,
                                 next_action,
                                 objective,
                                 open_study,
                                 run_sweep,
                                 run_trial,
                                 trial_config,
)
from cnnlstm.study.sweep.space import (
                                 PARAM_TYPES,
                                 Param,
                                 check_space,
                                 default_space,
                                 flatten,
                                 load_space,
                                 nest,
                                 parse_param,
                                 parse_space,
)
from cnnlstm.study.sweep.storage import (
                                 SQLITE_TIMEOUT_S,
                                 check_storage_url,
                                 default_storage,
                                 fail_stale_trials,
                                 heartbeat,
                                 make_storage,
                                 masked,
                                 retry_callback,
                                 with_driver,
)

__all__ = [
    "PARAM_TYPES", "Param", "check_space", "default_space", "flatten", "load_space", "nest", "parse_param",
    "parse_space",
    "SQLITE_TIMEOUT_S", "check_storage_url", "default_storage", "fail_stale_trials", "heartbeat",
    "make_storage", "masked", "retry_callback", "with_driver",
    "RUN_FILES", "SweepSettings", "adopt_previous_attempt", "base_config", "best_config", "best_val_acc",
    "is_surplus", "make_pruner", "make_sampler", "next_action", "objective", "open_study", "param_importances",
    "run_sweep", "run_trial", "sweep_summary", "trial_config", "write_outputs",
]
