"""``python -m cnnlstm``: the same as the ``cnnlstm`` command (and what torchrun launches)."""

from cnnlstm.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
