"""Optimizers and per-step learning-rate schedules, built from a :class:`~cnnlstm.config.TrainConfig`."""

from __future__ import annotations

import math

import torch

from cnnlstm.config import TrainConfig
from cnnlstm.errors import ConfigError


def build_optimizer(params, cfg: TrainConfig) -> torch.optim.Optimizer:
    """The optimizer ``cfg.optimizer`` with the config's LR, weight decay and momentum."""
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov,
                               weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "nadam":
        return torch.optim.NAdam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "rmsprop":
        return torch.optim.RMSprop(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    raise ConfigError(f"unknown optimizer {cfg.optimizer!r}")


def lr_factor(step: int, total: int, steps_per_epoch: int, cfg: TrainConfig) -> float:
    """Multiplier of the peak LR at optimizer step ``step`` of ``total``.

    one-cycle: cosine warm-up from 1/25 of the peak over the first 25% of steps, then cosine
    annealing to 1/1000; the others: optional linear warm-up, then constant, step or cosine.
    """
    if cfg.schedule == "onecycle":
        up = max(1, int(0.25 * total))
        if step < up:
            return 0.04 + 0.96 * 0.5 * (1 - math.cos(math.pi * step / up))
        t = (step - up) / max(1, total - up)
        return 1e-3 + (1 - 1e-3) * 0.5 * (1 + math.cos(math.pi * min(t, 1.0)))
    warm = int(cfg.warmup_epochs * steps_per_epoch)
    if step < warm:
        return (step + 1) / warm
    if cfg.schedule == "constant":
        return 1.0
    if cfg.schedule == "step":
        return cfg.gamma ** (step // (cfg.step_epochs * steps_per_epoch))
    t = (step - warm) / max(1, total - warm)  # cosine
    return 0.5 * (1 + math.cos(math.pi * min(t, 1.0)))


def build_scheduler(opt: torch.optim.Optimizer, cfg: TrainConfig, steps_per_epoch: int):
    """A per-step ``LambdaLR`` over :func:`lr_factor` (its state is just the step count)."""
    total = cfg.epochs * steps_per_epoch
    return torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, total, steps_per_epoch, cfg))
