"""Metric identities on constructed inputs, then the real trained classifier on real and broken digits."""
from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import ndimage

from conftest import one_error
from harness.__main__ import main
from harness.data import to_unit
from metrics.fid import fid
from metrics.inception_score import inception_score
from metrics.kid import kid
from metrics.modes import label_histogram, label_kl, modes
from metrics.precision_recall import precision_recall
from metrics.scorer import check_images, ImageError

RNG = np.random.default_rng(0)


def test_fid_is_zero_against_itself_and_grows_with_noise():
    x = RNG.standard_normal((2000, 16))
    assert fid(x, x) == pytest.approx(0.0, abs=1e-6)
    values = [fid(x, x + RNG.standard_normal(x.shape) * s) for s in (0.1, 0.5, 1.0)]
    assert values[0] < values[1] < values[2]
    assert fid(x, x + 3.0) == pytest.approx(16 * 9.0, rel=1e-6)  # a pure mean shift: ||mu1 - mu2||^2


def test_fid_matches_an_independent_route_for_non_commuting_covariances():
    """Tr sqrt(S1 S2) by the symmetric form sqrt(S1) S2 sqrt(S1) through eigh: a diagonal-only shortcut fails."""
    from scipy import linalg
    from metrics.fid import frechet_distance

    def spd(seed, d=6):
        a = np.random.default_rng(seed).standard_normal((d, d))
        return a @ a.T + 0.5 * np.eye(d)

    s1, s2 = spd(1), spd(2)
    assert not np.allclose(s1 @ s2, s2 @ s1)  # they do not commute
    mu1, mu2 = np.arange(6.0), np.ones(6)
    w, v = linalg.eigh(s1)
    root1 = (v * np.sqrt(w)) @ v.T
    inner = linalg.eigvalsh(root1 @ s2 @ root1)
    expected = float((mu1 - mu2) @ (mu1 - mu2) + np.trace(s1) + np.trace(s2) - 2 * np.sqrt(inner).sum())
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-9)
    diagonal_only = float((mu1 - mu2) @ (mu1 - mu2) + np.trace(s1) + np.trace(s2)
                          - 2 * np.sqrt(np.diag(s1) * np.diag(s2)).sum())
    assert abs(diagonal_only - expected) > 0.1


def test_kid_is_unbiased_over_many_same_distribution_draws():
    """Mean over 400 draws of two sets from one distribution is within 3 standard errors of 0 (a biased
    estimator that keeps the kernel diagonals sits several standard errors above)."""
    rng = np.random.default_rng(3)
    values = [kid(rng.standard_normal((80, 8)), rng.standard_normal((80, 8)), subsets=1, subset_size=40, seed=i)[0]
              for i in range(400)]
    mean, se = np.mean(values), np.std(values, ddof=1) / np.sqrt(len(values))
    assert abs(mean) < 3 * se


def test_precision_recall_uses_the_kth_nearest_other_point():
    """Reals at 0, 1, 2, 3 and 10..13 on a line; fakes at -2.5 and -5 reach the ball of 0 only when its
    radius is the 3rd (3.0) or 4th (10.0) neighbour distance. k=3 gives 1/6; k off by one gives 0 or 2/6."""
    line = lambda xs: np.stack([np.asarray(xs, float), np.zeros(len(xs))], axis=1)  # noqa: E731
    real = line([0, 1, 2, 3, 10, 11, 12, 13])
    fake = line([-2.5, -5, 30, 31, 32, 33])
    assert precision_recall(real, fake)[0] == pytest.approx(1 / 6)
    assert precision_recall(real, fake, k=2)[0] == 0.0
    assert precision_recall(real, fake, k=4)[0] == pytest.approx(2 / 6)


def test_inception_score_bounds():
    one_class = np.tile(np.eye(10)[3], (1000, 1))
    assert inception_score(one_class)[0] == pytest.approx(1.0, abs=1e-6)
    spread = np.eye(10)[np.arange(1000) % 10]
    assert inception_score(spread, splits=1)[0] == pytest.approx(10.0, rel=1e-6)
    assert 9.0 < inception_score(spread)[0] < 10.0  # ten splits of 100: each marginal a little uneven


def test_kid_two_halves_of_one_set_is_about_zero():
    x = RNG.standard_normal((2000, 16))
    same, _ = kid(x[:1000], x[1000:], subsets=20, subset_size=500)
    shifted, _ = kid(x[:1000], x[1000:] + 1.0, subsets=20, subset_size=500)
    assert abs(same) < 0.05 * shifted and shifted > 0


def test_modes_and_label_kl_on_constructed_histograms():
    uniform = np.full(10, 0.1)
    assert modes(uniform) == 10 and label_kl(uniform) == pytest.approx(0.0, abs=1e-12)
    single = np.eye(10)[0]
    assert modes(single) == 1 and label_kl(single) == pytest.approx(np.log(10))
    three = np.array([0.5, 0.3, 0.195, 0.005] + [0.0] * 6)
    assert modes(three) == 3  # 0.5% is below the 1% bar
    probs = np.eye(10)[[0, 0, 1, 2]]
    assert label_histogram(probs).tolist() == [0.5, 0.25, 0.25] + [0.0] * 7


def test_precision_recall_identical_and_disjoint():
    x = RNG.standard_normal((500, 8))
    assert precision_recall(x, x) == (1.0, 1.0)
    p, r = precision_recall(x, x + 100.0)
    assert p == 0.0 and r == 0.0
    p, r = precision_recall(x, x[:, :] * 0.05)  # collapsed to the centre: precise, poor recall
    assert p > 0.9 and r < 0.3


def test_image_checks():
    assert check_images(np.zeros((4, 28, 28), np.uint8)).shape == (4, 28, 28, 1)
    assert check_images(np.full((4, 28, 28, 1), 255, np.uint8)).max() == 1.0
    for bad in (np.zeros((4, 32, 32)), np.full((4, 28, 28), 2.0), np.array([{}] * 4, dtype=object),
                np.full((4, 28, 28), np.nan), np.full((4, 28, 28), 300, np.int32)):
        with pytest.raises(ImageError):
            check_images(bad)


# ------------------------------------------------------------------ with the real classifier

def test_classifier_meets_its_accuracy_bar(scorer_5k):
    assert scorer_5k.classifier_info["accuracy"] >= 0.98
    assert scorer_5k.classifier_info["test_images"] == 1000


def test_real_digits_score_far_better_than_broken_ones(scorer_5k, mnist_5k):
    real = to_unit(mnist_5k.test_images)
    blurred = np.stack([ndimage.gaussian_filter(x, 2.0) for x in real])
    noised = np.clip(real + np.random.default_rng(1).normal(0, 0.5, real.shape), 0, 1).astype(np.float32)
    floor = scorer_5k.floor
    assert floor["is"] > 9.0 and floor["modes"] == 10
    s_real = scorer_5k.score(to_unit(mnist_5k.train_images[1000:2000]))  # real, unseen by the reference
    assert s_real["is"] > 9.0 and s_real["modes"] == 10
    for broken in (blurred, noised):
        s = scorer_5k.score(broken)
        assert s["fid"] > 5 * s_real["fid"]
        assert s["kid"] > s_real["kid"] + 10 * abs(floor["kid_std"]) + 1.0
        assert s["precision"] < s_real["precision"] or s["recall"] < s_real["recall"]


@pytest.mark.slow
def test_smoke_generator_scores_far_worse_than_real(store, scorer_5k):
    from harness import data, registry, runner
    _, c = registry.resolve("base", smoke=True, sets=["eval.n_images=1000"])
    dataset = data.for_config(c, quiet=True)
    result = runner.run("base", c, 0, dataset, scorer_5k)
    assert result.status == "FINISHED"
    assert result.metrics["fid"] > 20 * scorer_5k.floor["fid"]
    assert result.metrics["is"] < scorer_5k.floor["is"] - 3


def test_inception_score_does_not_depend_on_the_order_of_the_images(scorer_5k, mnist_5k):
    order = np.argsort(mnist_5k.test_labels, kind="stable")
    by_class = scorer_5k.score(to_unit(mnist_5k.test_images[order]))["is"]
    shuffled = scorer_5k.score(to_unit(mnist_5k.test_images))["is"]
    assert by_class == shuffled and shuffled > 9.0  # exactly: the splits do not depend on the order
    probs = np.random.default_rng(1).dirichlet(np.ones(10), 500)
    reversed_order = inception_score(probs[::-1])
    assert inception_score(probs) == reversed_order and inception_score(probs[np.argsort(probs[:, 3])]) == reversed_order


def test_collapse_is_judged_the_same_way_from_any_samples(scorer_5k, mnist_5k):
    from metrics import collapse
    floor = scorer_5k.floor
    real = scorer_5k.score(to_unit(mnist_5k.train_images[1000:2000]))
    assert collapse.judge(real, floor) == ""
    blank = scorer_5k.score(np.zeros((1000, 28, 28, 1), np.float32))
    assert "digit classes" in collapse.judge(blank, floor) and "one class" in collapse.describe(blank)
    ones = to_unit(mnist_5k.train_images[mnist_5k.train_labels == 1][:400])  # real digits, one class only
    one_class = scorer_5k.score(ones)
    assert "1 of 10 digit classes" in collapse.judge(one_class, floor)
    assert "few classes" in collapse.describe(one_class) or "one class" in collapse.describe(one_class)
    # 9 classes of digit-like samples, but near few real digits: collapsed on recall, said so (base seed 1's
    # end at 20 epochs: FID 262, 9 classes, precision 0.77, recall 0.02)
    alike = {"modes": 9.0, "is": 4.0, "precision": 0.77, "recall": 0.02}
    assert collapse.judge(alike, floor).startswith("recall 0.020")
    assert "9 classes" in collapse.describe(alike) and "few classes" not in collapse.describe(alike)


@pytest.mark.slow
def test_classifier_and_reference_caches_are_keyed_by_the_data_content(tmp_path, monkeypatch, mnist_5k):
    """A changed file or split trains and computes afresh; the same content at another path does not."""
    from harness import data
    from metrics import classifier
    from metrics.scorer import Scorer
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))
    x, y = mnist_5k.train_images, mnist_5k.train_labels
    for name, rows in (("a.npz", slice(0, 300)), ("b.npz", slice(300, 600))):
        np.savez(tmp_path / name, x_train=x[rows], y_train=y[rows], x_test=x[3000:3100], y_test=y[3000:3100])
    (tmp_path / "copy").mkdir()
    (tmp_path / "copy" / "a.npz").write_bytes((tmp_path / "a.npz").read_bytes())
    a, b, a_copy = (data.load("mnist", str(tmp_path / p)) for p in ("a.npz", "b.npz", "copy/a.npz"))
    assert a.fingerprint != b.fingerprint and a.fingerprint == a_copy.fingerprint
    scorers = [Scorer(d, kid_subsets=2, kid_subset_size=20, quiet=True) for d in (a, b, a_copy)]
    paths = [s.classifier_info["path"] for s in scorers]
    assert paths[0] != paths[1] and paths[0] == paths[2]
    assert len(list((tmp_path / "cache" / "classifier").glob("*.keras"))) == 2  # trained twice, not three times
    assert len(list((tmp_path / "cache" / "reference").glob("*.npy"))) == 2
    assert not np.array_equal(scorers[0].reference_features, scorers[1].reference_features) or \
        scorers[0].floor != scorers[1].floor
    split_a, split_b = data.load_mnist_5k(1234), data.load_mnist_5k(99)
    assert classifier.cache_key(split_a) != classifier.cache_key(split_b)


def test_score_cli(tmp_path, mnist_5k, capsys):
    path = tmp_path / "digits.npy"
    np.save(path, mnist_5k.train_images[:500])  # uint8 (N, 28, 28)
    assert main(["score", str(path), "--dataset", "mnist-5k"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["n_images"] == 500 and out["modes"] == 10 and out["is"] > 8.5 and "floor" in out
    for name, array in (("objects.npy", np.array([{"a": 1}] * 3, dtype=object)), ("shape.npy", np.zeros((5, 30, 30))),
                        ("range.npy", np.full((5, 28, 28), 7.0))):
        np.save(tmp_path / name, array, allow_pickle=True)
        assert main(["score", str(tmp_path / name), "--dataset", "mnist-5k"]) == 2
        one_error(capsys.readouterr().err, name)
    assert main(["score", str(tmp_path / "missing.npy")]) == 2


def test_classifier_shift_augmentation_moves_whole_pixels_and_keeps_every_digit():
    from metrics.classifier import shift
    rng = np.random.default_rng(0)
    images = np.zeros((200, 28, 28), np.float32)
    images[:, 10:18, 12:16] = 1.0  # a block that stays inside the frame under any shift of 2
    assert np.array_equal(shift(images, rng, 0), images)
    moved = shift(images, rng, 2)
    assert moved.shape == images.shape and np.array_equal(moved.sum(axis=(1, 2)), images.sum(axis=(1, 2)))
    offsets = set()
    for before, after in zip(images, moved):
        (r0, c0), (r1, c1) = np.argwhere(before)[0], np.argwhere(after)[0]
        offsets.add((r1 - r0, c1 - c0))
        assert np.array_equal(np.roll(before, (r1 - r0, c1 - c0), axis=(0, 1)), after)
    assert offsets == {(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)}  # all 25 shifts are drawn


def test_one_tracking_store_shares_one_classifier(store, scorer_5k, mnist_5k, tmp_path, monkeypatch):
    """A second machine on the same store (an empty cache of its own) downloads the classifier the first
    published instead of training one; the weight digest is the same, and the store holds one classifier.
    The first machine's cache was written before weight digests (its json lacks one): it gains one."""
    import shutil
    from pathlib import Path
    from harness import scorers, tracking
    machine_a = tmp_path / "machine-a" / "classifier"
    shutil.copytree(Path(scorer_5k.classifier_info["path"]).parent, machine_a,
                    ignore=lambda folder, names: [n for n in names if not n.startswith("mnist-5k-")])
    for meta in machine_a.glob("*.json"):
        meta.write_text(json.dumps({k: v for k, v in json.loads(meta.read_text()).items() if k != "weights"}))
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "machine-a"))
    a = scorers.classifier_info(mnist_5k, quiet=True)  # this cache has it: published to the store
    assert a["weights"] == scorer_5k.classifier_info["weights"]
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "machine-b"))
    b = scorers.classifier_info(mnist_5k, quiet=True)
    assert b["weights"] == a["weights"] and b["train_seconds"] == a["train_seconds"]
    assert Path(b["path"]).is_relative_to(tmp_path / "machine-b")
    assert len(tracking.Store().runs(tracking.CLASSIFIERS)) == 1  # nothing trained or published twice


def test_metrics_import_nothing_from_harness():
    """metrics/ is a library of its own: harness depends on it, never the other way (a cycle would tie
    scoring to the trainer's internals)."""
    import ast
    from pathlib import Path
    folder = Path(__file__).parent.parent / "metrics"
    found = []
    for path in sorted(folder.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):  # function-level imports too
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            found += [f"{path.name}: {n}" for n in names if n == "harness" or n.startswith("harness.")]
    assert len(list(folder.glob("*.py"))) >= 8 and found == []
