"""The measuring layer: arrays and models in, numbers out.

- :mod:`~cnnlstm.measure.inference`: batched predictions (with flip TTA) and features;
- :mod:`~cnnlstm.measure.metrics`: accuracy, P/R/F1, ROC AUC, confusion matrix;
- :mod:`~cnnlstm.measure.calibration`: ECE, MCE, Brier, temperature scaling;
- :mod:`~cnnlstm.measure.stats`: every statistic the reports print (scipy.stats);
- :mod:`~cnnlstm.measure.embed`: t-SNE and embedding-quality metrics;
- :mod:`~cnnlstm.measure.robustness`: accuracy on corrupted images, corruption errors;
- :mod:`~cnnlstm.measure.explain`: Grad-CAM and LSTM-step attributions.

Nothing here reads or writes a run folder: that is the study layer's drivers' job.
"""
