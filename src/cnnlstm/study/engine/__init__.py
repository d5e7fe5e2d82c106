"""The job engine: it knows no study.

- :mod:`~cnnlstm.study.engine.jobs`: the job, its kinds (each kind's driver and final file), keys,
  "done" checks, costs and priorities, and reading finished seed runs;
- :mod:`~cnnlstm.study.engine.executor`: where jobs run (this process, or a Dask cluster) and the job log;
- :mod:`~cnnlstm.study.engine.loop`: the one "skip finished, run the rest, record failures" loop;
- :mod:`~cnnlstm.study.engine.session`: the run settings, the dataset and the executor a study opens.
"""
