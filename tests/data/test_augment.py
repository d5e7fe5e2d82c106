"""Behaviour of the batched augmentations."""

from __future__ import annotations

import pytest
import torch

from cnnlstm.data.augment import (
    Augment,
    augment_batch,
    flip_tta_views,
    random_erase,
    random_flip,
    random_shift,
    translate,
)
from cnnlstm.errors import ConfigError


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def batch(n: int = 8, size: int = 12, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, 1, size, size, generator=gen(seed + 100))


def centred_batch(n: int = 8, size: int = 12, border: int = 3) -> torch.Tensor:
    """Images that are zero within ``border`` pixels of the edge (so small shifts lose nothing)."""
    x = torch.zeros(n, 1, size, size)
    x[:, :, border:-border, border:-border] = torch.rand(n, 1, size - 2 * border, size - 2 * border) + 0.1
    return x


def test_flip_probability_zero_never_changes_and_draws_nothing() -> None:
    x, g = batch(), gen()
    state = g.get_state()
    assert torch.equal(random_flip(x, 0.0, 0.0, g), x)
    assert torch.equal(g.get_state(), state)


@pytest.mark.parametrize(("p_h", "p_v", "dims"), [(1.0, 0.0, [-1]), (0.0, 1.0, [-2]), (1.0, 1.0, [-2, -1])])
def test_flip_probability_one_always_flips(p_h: float, p_v: float, dims: list[int]) -> None:
    x = batch()
    assert torch.equal(random_flip(x, p_h, p_v, gen()), torch.flip(x, dims))


def test_flip_is_per_sample_and_reproducible() -> None:
    x = batch(n=64)
    a, b = random_flip(x, 0.5, 0.0, gen(7)), random_flip(x, 0.5, 0.0, gen(7))
    assert torch.equal(a, b)
    flipped = [(torch.equal(a[i], x[i].flip(-1)), torch.equal(a[i], x[i])) for i in range(64)]
    assert all(f != same for f, same in flipped)  # each sample is either flipped or untouched
    assert 10 < sum(f for f, _ in flipped) < 54  # and both happen
    assert not torch.equal(a, random_flip(x, 0.5, 0.0, gen(8)))


def test_shift_zero_is_identity() -> None:
    x = batch()
    assert torch.equal(random_shift(x, 0, gen()), x)


def test_shift_moves_pixels_without_losing_mass() -> None:
    x = centred_batch(n=32, border=3)
    out = random_shift(x, 3, gen(1))
    assert out.shape == x.shape
    torch.testing.assert_close(out.sum(dim=(1, 2, 3)), x.sum(dim=(1, 2, 3)))
    # every sample is a translated copy of its own image: some roll within +-3 reproduces it
    for i in range(32):
        assert any(
            torch.equal(out[i], torch.roll(x[i], (dy, dx), dims=(-2, -1)))
            for dy in range(-3, 4) for dx in range(-3, 4)
        )
    assert not torch.equal(out, x)
    assert torch.equal(out, random_shift(x, 3, gen(1)))


def test_translate_matches_roll_and_fills_from_outside() -> None:
    x = centred_batch(n=3, border=4)
    dy, dx = torch.tensor([2, -1, 0]), torch.tensor([-3, 0, 4])
    out = translate(x, dy, dx)
    for i in range(3):
        assert torch.equal(out[i], torch.roll(x[i], (int(dy[i]), int(dx[i])), dims=(-2, -1)))
    filled = translate(torch.ones(1, 1, 5, 5), torch.tensor([2]), torch.tensor([0]), fill=-1.0)
    assert torch.equal(filled[0, 0, :2], -torch.ones(2, 5))
    assert torch.equal(filled[0, 0, 2:], torch.ones(3, 5))
    assert (translate(torch.ones(1, 1, 5, 5), torch.tensor([9]), torch.tensor([0]), fill=7.0) == 7).all()


def test_erase_probability_zero_is_identity_and_one_erases_a_rectangle() -> None:
    x = batch() + 10  # no pixel is 0 before erasing
    assert torch.equal(random_erase(x, 0.0, gen()), x)
    out = random_erase(x, 1.0, gen(2))
    for i in range(len(x)):
        erased = out[i, 0] == 0
        rows, cols = erased.any(dim=1).nonzero().flatten(), erased.any(dim=0).nonzero().flatten()
        assert len(rows) and len(cols)
        # the erased pixels form exactly one full rectangle, and nothing else changed
        assert erased.sum() == len(rows) * len(cols) == (rows[-1] - rows[0] + 1) * (cols[-1] - cols[0] + 1)
        assert torch.equal(out[i, 0][~erased], x[i, 0][~erased])
    means = random_erase(x, 1.0, gen(2), value="mean")
    assert torch.isclose(means[0, 0][out[0, 0] == 0], x[0].mean()).all()


def test_augment_fast_path_and_pipeline() -> None:
    x, g = batch(), gen()
    assert not Augment().enabled
    assert Augment()(x, g) is x
    cfg = Augment(flip_h=0.5, shift=2, erase=0.5)
    assert cfg.enabled
    a = cfg(x, gen(3))
    assert a.shape == x.shape and not torch.equal(a, x)
    assert torch.equal(a, augment_batch(x, gen(3), flip_h=0.5, shift=2, erase=0.5))
    assert torch.equal(augment_batch(x, g, flip_h=1.0), x.flip(-1))


@pytest.mark.parametrize(
    "kwargs", [{"flip_h": 1.5}, {"flip_v": -0.1}, {"shift": -1}, {"erase": 2.0}, {"shift": 1.5}]
)
def test_bad_settings_are_config_errors(kwargs: dict) -> None:
    with pytest.raises(ConfigError):
        Augment(**kwargs)


def test_flip_tta_views_follow_training_flips() -> None:
    x = batch(n=2)
    assert len(flip_tta_views(x, 0.0, 0.0)) == 1 and flip_tta_views(x, 0.0, 0.0)[0] is x
    views = flip_tta_views(x, 0.5, 0.2)
    assert len(views) == 3
    assert torch.equal(views[1], x.flip(-1)) and torch.equal(views[2], x.flip(-2))
    assert len(flip_tta_views(x, 0.0, 0.5)) == 2


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_batch_with_cpu_and_cuda_generators() -> None:
    x = batch().cuda()
    for g in (gen(4), torch.Generator(device="cuda").manual_seed(4)):
        out = Augment(flip_h=0.5, flip_v=0.5, shift=2, erase=0.5)(x, g)
        assert out.device == x.device and out.shape == x.shape
