"""Image classifiers by name.

Importing this package registers every model (``cnn``, ``hybrid`` and ``controls`` modules); nothing else
happens at import time. Use :func:`create_model` to build one from config values and
:func:`list_models` to see what exists.
"""

from cnnlstm.models import cnn as _cnn  # noqa: F401  (registers model1, model2, tf_cnn, cnn_svm)
from cnnlstm.models import controls as _controls  # noqa: F401  (registers the no-LSTM controls)
from cnnlstm.models import hybrid as _hybrid  # noqa: F401  (registers the CNN-LSTM hybrids)
from cnnlstm.models import recurrent as _recurrent  # noqa: F401  (registers recurrence inside the conv stack)
from cnnlstm.models.base import ImageClassifier
from cnnlstm.models.registry import (
    ModelEntry,
    check_model_args,
    create_model,
    get_model_entry,
    list_models,
    model_args,
    model_summary,
    register_model,
)

__all__ = [
    "ImageClassifier",
    "ModelEntry",
    "check_model_args",
    "create_model",
    "get_model_entry",
    "list_models",
    "model_args",
    "model_summary",
    "register_model",
]
