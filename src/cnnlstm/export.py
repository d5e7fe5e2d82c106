"""Deprecated: ``cnnlstm.export`` moved to :mod:`cnnlstm.deploy.export`; this alias warns and forwards.

docs/predict.md named this path before the layers became folders; it goes in a later release.
"""

from cnnlstm._deprecated import forwarding_getattr

__getattr__ = forwarding_getattr("cnnlstm.export", "cnnlstm.deploy.export")
