"""Collapse, judged from the samples: one rule for every arm, from an evaluation's metrics and the
real-data floor (the same metrics for real digits), never from the losses (label smoothing alone
keeps D's loss above 0.16, so a loss rule cannot fire the same way for every arm)."""
from __future__ import annotations


def judge(metrics: dict, floor: dict, modes_fraction: float = 0.5, recall_fraction: float = 0.05) -> str:
    """'' when the samples cover the digits, else why they do not, in words.
    Collapsed: fewer digit classes than modes_fraction of the real digits' (5 of 10 by default), or
    recall (real digits near some sample) below recall_fraction of the real digits' own recall."""
    reasons = []
    if metrics["modes"] < modes_fraction * floor["modes"]:
        reasons.append(f"{metrics['modes']:.0f} of {floor['modes']:.0f} digit classes")
    if metrics["recall"] < recall_fraction * floor["recall"]:
        reasons.append(f"recall {metrics['recall']:.3f} (real digits {floor['recall']:.2f})")
    return "; ".join(reasons)


def describe(metrics: dict) -> str:
    """What collapsed samples look like, read from the metrics."""
    if metrics["modes"] <= 1 and metrics["is"] < 1.5:
        return "every sample looks like one class to the classifier (typically blank or one repeated stroke)"
    if metrics["precision"] < 0.1:
        return "the samples are not digit-like (noise, blobs or textures)"
    if metrics["modes"] >= 5:  # collapsed on recall: the classes are there, their variety is not
        return (f"digits of {metrics['modes']:.0f} classes, but alike: they come near few of the real digits "
                "(low recall)")
    return "the samples are digits of a few classes only (mode collapse)"
