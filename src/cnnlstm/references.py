"""Published Fashion-MNIST test accuracies the report compares measured runs against.

Plain data: one :class:`Reference` per published result (from the research plan's Tables I and
II, the Fashion-MNIST README's benchmark list and Agarap's CNN-SVM paper). ``model`` names the
registered model that re-implements it, if any; results without one (human performance,
ResNet18, ...) are context rows in the report's reference table.
"""

from __future__ import annotations

from dataclasses import dataclass

FASHION_README = "https://github.com/zalandoresearch/fashion-mnist"
AGARAP_ARXIV = "https://arxiv.org/abs/1712.03541"


@dataclass(frozen=True)
class Reference:
    """One published test accuracy.

    Attributes
    ----------
    key : str
        Unique id.
    name : str
        What the report calls it.
    accuracy : float
        Published test accuracy in percent.
    source : str
        Citation text.
    url : str
        A link for the citation ("" when the source is the research plan itself).
    model : str or None
        The registered model (``cnnlstm models``) that re-implements it.
    note : str
        Anything needed to read the number fairly.
    """

    key: str
    name: str
    accuracy: float
    source: str
    url: str = ""
    model: str | None = None
    note: str = ""


REFERENCES: tuple[Reference, ...] = (
    Reference("human", "Human performance (no fashion expertise)", 83.50, "Fashion-MNIST README",
              FASHION_README, note="1,000 random images per person, 3 label choices each"),
    Reference("model1", "Model I (plan Table II)", 86.55, "research plan, Table II", model="model1",
              note="Conv(1,8,5) Pool Conv(8,32,5) Pool FC(512,64) FC(64,10)"),
    Reference("model2", "Model II (plan Table II)", 86.28, "research plan, Table II", model="model2",
              note="Conv(1,16,5) Pool Conv(16,32,5) Pool FC(512,32) FC(32,10)"),
    Reference("ji_cnn_lstm", "CNN+LSTM (Ji 2022)", 91.36, "research plan Table I, citing Ji 2022 [1]",
              model="ji_cnn_lstm", note="Conv 3x3x20, MaxPool 2x2, Conv 5x5x20, LSTM + FC + softmax; "
              "no public wiring detail"),
    Reference("tf_cnn", "CNN, TensorFlow tutorial", 91.60, "Fashion-MNIST README (plan Table I)",
              FASHION_README, model="tf_cnn", note="conv5x5x32 same, pool, conv5x5x64 same, pool, "
              "FC1024, dropout 0.4"),
    Reference("cnn_svm", "CNN-SVM (Agarap)", 90.72, "Agarap, arXiv 1712.03541 (plan Table I)", AGARAP_ARXIV,
              model="cnn_svm", note="L2-SVM head; the same CNN with softmax reached 91.86%"),
    Reference("cnn_softmax_agarap", "CNN-Softmax twin (Agarap)", 91.86, "Agarap, arXiv 1712.03541",
              AGARAP_ARXIV, note="the CNN-SVM's softmax twin"),
    Reference("gru_svm", "GRU+SVM (Agarap)", 88.8, "Fashion-MNIST README", FASHION_README),
    Reference("gru_svm_dropout", "GRU+SVM with dropout (Agarap)", 89.7, "Fashion-MNIST README",
              FASHION_README),
    Reference("resnet18", "ResNet18", 94.9, "Fashion-MNIST README", FASHION_README,
              note="flips, translation, rotation"),
    Reference("mobilenet", "MobileNet", 95.0, "Fashion-MNIST README", FASHION_README),
    Reference("densenet_bc", "DenseNet-BC 768K params", 95.4, "Fashion-MNIST README", FASHION_README),
    Reference("dpn_wrn", "Dual path network with WRN-28-10", 95.7, "research plan Section II.A.2, "
              "citing the Fashion-MNIST README", FASHION_README, note="the plan's 'highest accuracy'"),
    Reference("wrn_28_10_re", "WRN-28-10 + random erasing", 96.3, "Fashion-MNIST README", FASHION_README),
    Reference("wrn_40_4", "WRN40-4", 96.7, "Fashion-MNIST README", FASHION_README),
    Reference("darts", "Fine-tuning DARTS", 96.91, "papers-with-code leaderboard",
              "https://paperswithcode.com/sota/image-classification-on-fashion-mnist",
              note="best listed entry"),
)


def published_for(model: str) -> Reference | None:
    """The published result a registered model re-implements, or None (this project's own models).

    Examples
    --------
    >>> published_for("model1").accuracy
    86.55
    >>> published_for("cnn_lstm") is None
    True
    """
    for ref in REFERENCES:
        if ref.model == model:
            return ref
    return None
