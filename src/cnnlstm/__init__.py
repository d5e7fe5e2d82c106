"""cnnlstm: CNN-LSTM hybrids and image classifiers on Fashion-MNIST-style data.

The package follows one flow: ``data -> models -> train -> evaluate -> embed -> report``.
Each step is a plain function on plain values; the command line (:mod:`cnnlstm.cli`) is the
only place that parses arguments, picks devices and run folders.
"""

__version__ = "0.1.0"
