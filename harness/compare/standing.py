"""Where a long comparison stands (`harness compare ... --so-far`), read from the store while it trains
or after it stopped: every seed of every arm finished (its outcome), diverged, training or stopped (its
last evaluation), or not started, and the figures of the finished seeds, with the evaluations so far of
those still training or stopped drawn dashed in FID over training. It trains, claims and records
nothing, and decides nothing: a design decides only at its looks (harness/compare/looks.py), so the
comparison's own command gives the decisions."""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace
from pathlib import Path

from harness import loop
from harness.compare.arms import (Arm, SeedOutcome, data_key, epoch_length, evaluations_judged, floor_of, is_alive,
                                  is_resumable, latest, left_out, outcome, outcome_test)
from harness.compare.figures import figures, links
from harness.compare.report import Written, at_step, num
from harness.tracking import Store

OTHER_IDENTITY = ("other identity", "identity v1")  # left_out's kinds for runs no arm asked here could use
PACE_WINDOW_S = 1800  # a training seed's pace: steps a second over its last half hour (evaluations included)


@dataclass
class SeedState:
    """One seed of one arm as the store has it."""
    arm: str
    seed: int
    state: str  # finished, diverged, training (a live heartbeat), stopped (resumable) or not started
    run_id: str = ""
    step: int = 0  # steps trained so far (diverged: where it stopped; finished: not needed, all of them)
    fid: float = math.nan  # the final FID, or the last evaluation's
    fid_step: int = 0  # where that FID was measured
    escaped: bool = False  # finished, judged, not collapsed, with a final FID (SeedOutcome.escaped)
    now: str = ""  # why a finished seed is judged collapsed, why one diverged, or its last evaluation's verdict
    since: int | None = None  # an escaped seed's first evaluation of the uncollapsed stretch it ended in
    pace: float = 0.0  # a seed in training: steps a second over the last PACE_WINDOW_S (0: not known)


def states(arms: list[Arm], store: Store, most: int, retry_diverged: bool = False
           ) -> tuple[list[SeedState], dict, dict, list]:
    """Every seed of every arm: the first look's seeds (train.seeds) always, later ones up to `most` when the
    store has a run of them; per arm label, the finished and diverged seeds' outcomes and the evaluations so far
    of the seeds training or stopped, as SeedOutcomes (for the figures); and the runs of these experiments that
    no arm asked here could use (another identity: often another --epochs or --set than the comparison's). An
    arm of another's identity (latent at 100 is base) is listed once, under that arm. retry_diverged: diverged
    seeds are being trained again (--retry-diverged), so only a finished run is a seed's outcome."""
    listed, outcomes, going_of = [], {}, {}
    is_done = outcome_test(retry_diverged)
    runs_of = {a.experiment: store.runs(a.experiment) for a in arms}
    for arm in (a for a in arms if not a.same_as):
        runs = runs_of[arm.experiment]
        outcomes[arm.label], going_of[arm.label] = [], []
        first = arm.config.train.seed
        for seed in range(first, first + max(most, arm.config.train.seeds)):
            done = latest(runs, arm, seed, is_done)
            if done is not None:
                o = outcome(store, done, arm)
                outcomes[arm.label].append(o)
                last = o.fid_history[-1] if o.fid_history else (0, math.nan)
                if o.outcome == "finished":
                    now = "" if o.escaped else o.collapse or "not judged: no final FID, modes or recall"
                    state = SeedState(arm.label, seed, "finished", o.run_id, 0, o.metrics.get("fid", math.nan),
                                      last[0], o.escaped, now, o.escaped_since)
                else:
                    state = SeedState(arm.label, seed, "diverged", o.run_id, o.last_step or 0, last[1], last[0],
                                      now=o.reason or "a non-finite loss")
                listed.append(state)
                continue
            going = latest(runs, arm, seed, lambda r: is_alive(r) or is_resumable(r))
            if going is not None:
                run_id = going.info.run_id
                history = store.history(run_id, "eval/fid")
                judged = evaluations_judged(store, run_id, floor_of(going), arm.config.eval)
                now = ("" if not judged else "collapsed at its last evaluation" if judged[-1][1] else
                       "not collapsed at its last evaluation")
                # losses are logged in chunks; the heartbeat says the step it was at, a minute or so ago
                losses = store.timeline(run_id, "train/d_loss")  # read once: the last step and the pace
                step = max(max((t[0] for t in losses), default=0), int(going.data.tags.get("heartbeat.step", 0)))
                state = "training" if is_alive(going) else "stopped"
                steps_a_second = pace(losses) if state == "training" else 0.0
                listed.append(SeedState(arm.label, seed, state, run_id, step, history[-1][1] if history else math.nan,
                                        history[-1][0] if history else 0, now=now, pace=steps_a_second))
                going_of[arm.label].append(SeedOutcome(run_id, seed, state, fid_history=history,
                                                       collapse_history=judged))
            elif seed < first + arm.config.train.seeds:
                listed.append(SeedState(arm.label, seed, "not started"))
    counted = [replace(a, runs=outcomes.get(a.label, [])) for a in arms]
    others = [row for row in left_out(counted, runs_of) if row[2] in OTHER_IDENTITY]
    return listed, outcomes, going_of, others


def pace(timeline: list[tuple[int, float]], now: float | None = None) -> float:
    """Steps a second over the last PACE_WINDOW_S of a run's (step, logged at) points; 0 when fewer than
    two fall there. Steps before a resume are older than the window, or ignored when they run backwards."""
    now = time.time() if now is None else now
    recent = [(step, t) for step, t in timeline if t >= now - PACE_WINDOW_S]
    if len(recent) < 2 or recent[-1][1] <= recent[0][1]:
        return 0.0
    return max(0.0, (recent[-1][0] - recent[0][0]) / (recent[-1][1] - recent[0][1]))


def _time_left(listed: list[SeedState], left: int) -> str:
    """How long the steps left take at the training seeds' pace, in words ('' when not known)."""
    going = sum(s.pace for s in listed if s.state == "training")
    if not going or not left:
        return ""
    return (f" At the {going:.2f} steps a second that the seeds in training made over their last "
            f"{PACE_WINDOW_S // 60} minutes (evaluations included), the {left:,} steps left take about "
            f"{left / going / 3600:.1f} h more; seeds of looks not yet reached are not counted.")


def report(arms: list[Arm], datasets: dict, store: Store, out: Path, most: int, retry_diverged: bool = False
           ) -> Written:
    """Write out/report.md and, once base has a finished seed, the finished seeds' figures; returns what it
    wrote, with the terminal text (no MLflow run: the page records nothing)."""
    listed, outcomes, going_of, others = states(arms, store, most, retry_diverged)
    per_epoch = epoch_length(arms, datasets)
    total = {a.label: loop.total_steps(a.config, len(datasets[data_key(a.config)].train_images)) for a in arms}
    planned = sum(total[s.arm] for s in listed)
    # a finished or diverged seed has trained all it will: the page reaches 100% when nothing is left
    trained = sum(total[s.arm] if s.state in ("finished", "diverged") else min(s.step, total[s.arm]) for s in listed)
    shown = [a for a in arms if not a.same_as]
    summary = [f"Read from the store at {time.strftime('%Y-%m-%d %H:%M %Z')}: {trained:,} of the {planned:,} "
               f"steps of the seeds listed ({math.floor(100 * trained / max(1, planned))}%)."
               + _time_left(listed, planned - trained) + " Nothing here was "
               "trained, claimed or decided: a design decides an arm only at its looks, so this page has no "
               "verdicts; the comparison's own command gives them.", "",
               "| arm | finished | escaped | collapsed | diverged | training | stopped | not started "
               "| final FID of the escaped | final FID of the collapsed |", "|---|---|---|---|---|---|---|---|---|---|"]
    for arm in shown:
        mine = [s for s in listed if s.arm == arm.label]
        finished = [s for s in mine if s.state == "finished"]
        escaped = [s for s in finished if s.escaped]
        count = [sum(s.state == k for s in mine) for k in ("diverged", "training", "stopped", "not started")]
        fids = [", ".join(num(s.fid) for s in group if math.isfinite(s.fid)) or "-"
                for group in (escaped, [s for s in finished if not s.escaped])]
        summary.append(f"| {arm.label} | {len(finished)} | {len(escaped)} | {len(finished) - len(escaped)} | "
                       + " | ".join(map(str, count)) + f" | {fids[0]} | {fids[1]} |")
    twins = [a for a in arms if a.same_as]
    if twins:
        summary += ["", "; ".join(f"{a.label} has {a.same_as}'s run identity: its seeds are {a.same_as}'s"
                                  for a in twins) + "."]
    if others:
        by_experiment: dict = {}
        for experiment, _, _, reason in others:
            by_experiment.setdefault(experiment, []).append(reason)
        summary += ["", "Runs of these experiments that no arm asked here could use (another identity: a "
                    "different --epochs, --steps or --set than the comparison's?): " + "; ".join(
                        f"{e} {len(r)} ({r[0][:160]})" for e, r in by_experiment.items()) + "."]
    interim = any(a.config.eval.interim_images for a in arms)
    lines = ["# Where the comparison stands", "", *summary, "",
             "Every seed: a finished seed's final FID and when it escaped (the first evaluation of the "
             "uncollapsed stretch it ended in) or why it is judged collapsed; a seed in training or stopped, "
             "its last evaluation" + (" (on fewer images than the final one)" if interim else "") + ".", "",
             "| arm | seed | run id | state | steps | FID | now |", "|---|---|---|---|---|---|---|"]
    for s in listed:
        where = "final" if s.state == "finished" else f"at {at_step(s.fid_step, per_epoch)}"
        fid = "-" if math.isnan(s.fid) else f"{num(s.fid)} {where}"
        now = f"escaped since {at_step(s.since, per_epoch)}" if s.since is not None else (
            "escaped" if s.escaped else s.now)
        steps = f"{total[s.arm] if s.state == 'finished' else s.step:,} of {total[s.arm]:,}" if s.run_id else "-"
        lines.append(f"| {s.arm} | {s.seed} | {s.run_id or '-'} | {s.state} | {steps} | {fid} | "
                     f"{now.replace('|', '/') or '-'} |")
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    if outcomes.get(shown[0].label):  # the figures draw the other arms over base's seeds
        paths = figures([replace(a, runs=outcomes[a.label]) for a in shown], store, out, per_epoch,
                        training=going_of)
        lines += ["", "The finished seeds, and in FID over training the seeds still training or stopped (dashed):",
                  "", "\n\n".join(links(paths))]
    (out / "report.md").write_text("\n".join(lines) + "\n")
    return Written("\n".join(summary), out / "report.md", paths)
