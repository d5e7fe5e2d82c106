"""Published Fashion-MNIST test accuracies the report compares measured runs against.

Plain data: one :class:`Reference` per published result (from the research plan's Tables I and
II, the Fashion-MNIST README's benchmark list and Agarap's CNN-SVM paper). ``model`` names the
registered model that re-implements it, if any; results without one (human performance,
ResNet18, ...) are context rows in the report's reference table. ``recipe`` says how the source
trained the model; the ``paper`` preset (``presets/paper.toml``) encodes it.
"""

from __future__ import annotations

from dataclasses import dataclass

FASHION_README = "https://github.com/zalandoresearch/fashion-mnist"
AGARAP_ARXIV = "https://arxiv.org/abs/1712.03541"
AGARAP_REPO = "https://github.com/AFAgarap/cnn-svm"
FASHION_CONVNET = "https://github.com/zalandoresearch/fashion-mnist/blob/master/benchmark/convnet.py"
TF_LAYERS_TUTORIAL = ("https://github.com/tensorflow/tensorflow/blob/master/"
                      "tensorflow/examples/tutorials/layers/cnn_mnist.py")


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
    recipe : str
        How the source trained the model, in one line ("" when not recorded).
    recipe_source : str
        Where the recipe is stated (file, table or URL).
    recipe_epochs : int or None
        Epochs of the published recipe over this project's 55,000 training images (published
        steps x batch / 55,000); None when the source gives no schedule. A measured run with
        fewer epochs is a short schedule, which the reports print as not comparable.
    """

    key: str
    name: str
    accuracy: float
    source: str
    url: str = ""
    model: str | None = None
    note: str = ""
    recipe: str = ""
    recipe_source: str = ""
    recipe_epochs: int | None = None


REFERENCES: tuple[Reference, ...] = (
    Reference("human", "Human performance (no fashion expertise)", 83.50, "Fashion-MNIST README",
              FASHION_README, note="1,000 random images per person, 3 label choices each"),
    Reference("model1", "Model I (plan Table II)", 86.55, "research plan, Table II", model="model1",
              note="Conv(1,8,5) Pool Conv(8,32,5) Pool FC(512,64) FC(64,10)"),
    Reference("model2", "Model II (plan Table II)", 86.28, "research plan, Table II", model="model2",
              note="Conv(1,16,5) Pool Conv(16,32,5) Pool FC(512,32) FC(32,10)"),
    Reference("ji_cnn_lstm", "CNN+LSTM (Ji 2022)", 91.36, "research plan Table I, citing Ji 2022 [1]",
              model="ji_cnn_lstm", note="Conv 3x3x20, MaxPool 2x2, Conv 5x5x20, LSTM + FC + softmax; "
              "no public wiring detail",
              recipe="only \"Optimizer: Maximum Likelihood\" (the loss) is stated; epochs, batch size, "
              "optimizer, learning rate and dropout are not public",
              recipe_source="research plan Table I; Ji, Proc. SPIE 12258 (NNICE 2022), pp. 178-184 "
              "(full text not openly available)"),
    Reference("tf_cnn", "CNN, TensorFlow tutorial", 91.60, "Fashion-MNIST README (plan Table I)",
              FASHION_README, model="tf_cnn", note="conv5x5x32 same, pool, conv5x5x64 same, pool, "
              "FC1024, dropout 0.4",
              recipe="plain SGD lr 0.001, batch 400, 100 rounds x 2,000 steps (200,000 steps) on all "
              "60,000 training images, test accuracy after each round (which round gave 91.6% is not "
              "stated); softmax cross-entropy, dropout 0.4, no augmentation (the TF tutorial itself: "
              "batch 100, 20,000 steps)",
              recipe_source=f"{FASHION_CONVNET} (the README row's code link); {TF_LAYERS_TUTORIAL}",
              recipe_epochs=1455),
    Reference("cnn_svm", "CNN-SVM (Agarap)", 90.72, "Agarap, arXiv 1712.03541 (plan Table I)", AGARAP_ARXIV,
              model="cnn_svm", note="L2-SVM head; the same CNN with softmax reached 91.86%",
              recipe="Adam lr 1e-3, batch 128, 10,000 steps on 55,000 training images, dropout 0.5, "
              "loss mean(W^2) + C*mean(max(0, 1 - y*out)^2) with C = 1, weights truncated-normal "
              "std 0.1, biases 0.1, no augmentation",
              recipe_source=f"{AGARAP_REPO}: README Results table, main.py, model/cnn_svm.py",
              recipe_epochs=23),
    Reference("cnn_softmax_agarap", "CNN-Softmax twin (Agarap)", 91.86, "Agarap, arXiv 1712.03541",
              AGARAP_ARXIV, note="the CNN-SVM's softmax twin",
              recipe="as the CNN-SVM but softmax cross-entropy: Adam lr 1e-3, batch 128, 10,000 steps, "
              "dropout 0.5",
              recipe_source=f"{AGARAP_REPO}: README Results table, main.py, model/cnn_softmax.py"),
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


#: Training images of a full run on Fashion-MNIST: the 60,000 less the 5,000 held out for validation.
FULL_TRAIN_IMAGES = 55_000


def chosen_epochs(model: str) -> int:
    """Epochs this project's ``paper`` preset trains ``model`` for: the recipe of a source that gives none."""
    from cnnlstm.config import resolve_train_config

    return resolve_train_config(model, preset="paper").epochs


def recipe_status(ref: Reference, *, epochs: int, train_images: int | None) -> tuple[str, bool]:
    """Whether a measured run may be compared with ``ref``'s published number, and the table's cell.

    A run is not comparable, and gets no difference, when it trained on fewer images than a full
    run (``train_images`` < :data:`FULL_TRAIN_IMAGES`; None when the run did not record it) or for
    fewer epochs than its recipe: the published one, or where the source gives no schedule the
    ``paper`` preset's (:func:`chosen_epochs`).

    Examples
    --------
    >>> recipe_status(published_for("cnn_svm"), epochs=23, train_images=2000)
    ('trained on 2,000 of 55,000 images: not comparable', False)
    """
    if train_images is not None and train_images < FULL_TRAIN_IMAGES:
        return f"trained on {train_images:,} of {FULL_TRAIN_IMAGES:,} images: not comparable", False
    if ref.recipe_epochs is not None:
        if epochs < ref.recipe_epochs:
            return f"short schedule ({epochs} of {ref.recipe_epochs} epochs): not comparable", False
        return f"published recipe ({ref.recipe_epochs} epochs)", True
    chosen = chosen_epochs(ref.model) if ref.model else epochs
    if epochs < chosen:
        return f"short schedule ({epochs} of the {chosen} epochs chosen here; source gives none): not comparable", False
    return f"source gives no schedule: {epochs} epochs chosen here", True
