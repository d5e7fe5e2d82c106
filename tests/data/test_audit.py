"""The dataset audit finds planted exact and near duplicates, and nothing else."""

from __future__ import annotations

from itertools import combinations

import numpy as np
import pytest

from cnnlstm.data import audit

from conftest import synthetic_arrays


def nudge(image: np.ndarray, n_pixels: int = 50, by: int = 10) -> np.ndarray:
    """A near copy: ``n_pixels`` pixels moved by ``by`` grey levels (L2 = sqrt(n) * by / 255)."""
    out = image.astype(np.int16).ravel()
    out[:n_pixels] += by
    return np.clip(out, 0, 255).astype(np.uint8).reshape(image.shape)


@pytest.fixture(scope="module")
def planted():
    a = synthetic_arrays(n_train=200, n_test=50, seed=3)
    tri, trl, tei, tel = (a[k].copy() for k in ("train_images", "train_labels", "test_images", "test_labels"))
    tri[10] = tri[3]  # exact, within train
    trl[10] = trl[3]
    tei[5] = tri[20]  # exact, across
    tel[5] = trl[20]
    tei[8] = nudge(tei[7])  # near (d = 0.277), within test
    tel[8] = tel[7]
    tei[9] = nudge(tri[30], 80, 20)  # near (d = 0.70), across, with a different label
    tel[9] = (trl[30] + 1) % 10
    return tri, trl, tei, tel


def test_the_audit_finds_the_planted_duplicates_and_no_others(planted):
    tri, trl, tei, tel = planted
    rec = audit.audit_dataset(tri, trl, tei, tel)
    assert rec["exact"] == {"train": [[3, 10]], "test": [], "train_test": [[20, 5]]}
    assert [p[:2] for p in rec["near"]["train"]] == []
    assert [p[:2] for p in rec["near"]["test"]] == [[7, 8]]
    assert [p[:2] for p in rec["near"]["train_test"]] == [[30, 9]]
    assert rec["near"]["test"][0][2] == pytest.approx(np.sqrt(50) * 10 / 255, abs=1e-3)
    assert rec["test_overlapping_train"] == [5, 9]
    assert rec["counts"] == {"exact_train": 1, "exact_test": 0, "exact_train_test": 1, "near_train": 0,
                             "near_test": 1, "near_train_test": 1, "test_overlapping_train": 2,
                             "label_conflicts": 1}
    assert rec["label_conflicts"] == [{"kind": "train_test", "match": "near", "i": 30, "j": 9,
                                       "labels": [int(trl[30]), int(tel[9])]}]


def test_train_test_overlap_agrees_with_the_audit(planted):
    tri, trl, tei, tel = planted
    np.testing.assert_array_equal(audit.train_test_overlap(tri, tei), [5, 9])


def test_a_pair_just_beyond_the_threshold_is_not_a_duplicate():
    a = synthetic_arrays(n_train=30, n_test=5, seed=4)["train_images"]
    a[1] = nudge(a[0], 66, 32)  # d = sqrt(66) * 32 / 255 = 1.019
    pairs, _ = audit.near_duplicate_pairs(a)
    assert [0, 1] not in pairs.tolist()
    pairs, dist = audit.near_duplicate_pairs(a, threshold=1.05)
    assert pairs.tolist() == [[0, 1]] and dist[0] == pytest.approx(np.sqrt(66) * 32 / 255, abs=1e-4)


def test_near_search_misses_nothing_a_brute_force_finds():
    rng = np.random.default_rng(0)
    centres = rng.integers(0, 256, size=(30, 28, 28))
    images = np.clip(centres[rng.integers(0, 30, size=300)] + rng.normal(0, 6, (300, 28, 28)), 0, 255)
    images = images.astype(np.uint8)
    flat = images.reshape(300, -1).astype(np.float64) / 255
    dists = {(i, j): float(np.linalg.norm(flat[i] - flat[j])) for i, j in combinations(range(300), 2)}
    ranked = np.sort(list(dists.values()))
    threshold = float(ranked[400] + ranked[401]) / 2  # 401 pairs inside, none on the edge
    expected = sorted([list(p) for p, d in dists.items() if 0 < d <= threshold])
    pairs, _ = audit.near_duplicate_pairs(images, threshold=threshold)
    assert pairs.tolist() == expected


def test_pair_examples_show_overlaps_first(planted):
    tri, trl, tei, tel = planted
    rows = audit.pair_examples(audit.audit_dataset(tri, trl, tei, tel))
    assert [r["kind"] for r in rows] == ["train_test", "train_test", "test", "train"]
    assert rows[0]["distance"] == 0.0
