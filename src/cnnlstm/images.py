"""Deprecated: ``cnnlstm.images`` moved to :mod:`cnnlstm.deploy.images`; this alias warns and forwards.

docs/predict.md named this path before the layers became folders; it goes in a later release.
"""

from cnnlstm._deprecated import forwarding_getattr

__getattr__ = forwarding_getattr("cnnlstm.images", "cnnlstm.deploy.images")
