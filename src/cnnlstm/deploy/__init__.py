"""The deployment layer: a trained run's weights applied to a user's images, and exported.

- :mod:`~cnnlstm.deploy.images`: reading any image the Fashion-MNIST way;
- :mod:`~cnnlstm.deploy.predict`: batched prediction from a run folder;
- :mod:`~cnnlstm.deploy.export`: TorchScript and ONNX.

It never imports training or study code, so predicting loads no optimizer, loop or Dask.
"""
