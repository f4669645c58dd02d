"""The metric classifier's training on MNIST's 60,000 digits: the settings of metrics v2 beside today's,
in one process, on the same data. Prints seconds and accuracy on the 10,000 test digits for each, then
the time ratio (today / v2). Train, not cached: nothing is written.

Usage: python bench/classifier.py [--v2-epochs K]
K < 12 times K of v2's 12 epochs and scales the time by 12 / K (its accuracy is then not v2's: not
printed); the default trains v2 in full (about 20 minutes on 2 CPU cores).
"""
from __future__ import annotations

import argparse

from harness import data
from metrics import classifier

# metrics v2's settings for mnist (METRICS_VERSION 2): 12 epochs, per-image shifts and rotations (scipy).
V2 = {"filters": (32, 64), "epochs": 12, "batch_size": 128, "learning_rate": 1e-3, "shift": 2.0, "rotate": 10.0, "seed": 0}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--v2-epochs", type=int, default=V2["epochs"], help="epochs of v2's settings to time (1-12)")
    args = p.parse_args()
    dataset = data.load("mnist")
    if dataset.name != "mnist":
        raise SystemExit("this benchmark needs MNIST's 60,000 digits: run `harness data` first.")
    now = classifier.SETTINGS["mnist"]
    _, accuracy, seconds = classifier.train(dataset, settings=now)
    print(f"today's settings {now}: {seconds:.0f} s, test accuracy {accuracy:.4f}", flush=True)
    v2 = {**V2, "epochs": args.v2_epochs}
    _, v2_accuracy, v2_seconds = classifier.train(dataset, settings=v2)
    scale = V2["epochs"] / args.v2_epochs
    shown = f"test accuracy {v2_accuracy:.4f}" if scale == 1 else f"(timed {args.v2_epochs} epochs, x{scale:g})"
    print(f"metrics v2 settings {V2}: {v2_seconds * scale:.0f} s {shown}")
    print(f"ratio={seconds / (v2_seconds * scale):.3f}")


if __name__ == "__main__":
    main()
