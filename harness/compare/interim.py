"""Where a long comparison stands (`harness compare ... --so-far`), read from the store while it trains
or after it stopped: every seed of every arm finished (its outcome), training or stopped (its last
evaluation), or not started, and the figures of the finished seeds. It trains, claims and records
nothing, and decides nothing: a design decides only at its looks (harness/compare/looks.py), so the
comparison's own command gives the decisions."""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace
from pathlib import Path

from harness import loop
from harness.compare.arms import (Arm, data_key, epoch_length, evaluations_judged, is_alive, is_outcome, is_resumable,
                                  last_step, latest, outcome)
from harness.compare.figures import figures
from harness.compare.report import at_step, num
from harness.tracking import Store


@dataclass
class SeedState:
    """One seed of one arm as the store has it."""
    arm: str
    seed: int
    state: str  # finished, diverged, training (a live heartbeat), stopped (resumable) or not started
    run_id: str = ""
    step: int = 0  # steps trained (finished: all of them)
    fid: float = math.nan  # the final FID, or the last evaluation's
    fid_step: int = 0  # where that FID was measured
    end: str = ""  # finished: escaped, or why it is judged collapsed; diverged: why it stopped
    since: int | None = None  # an escaped seed's first evaluation of the uncollapsed stretch it ended in


def states(arms: list[Arm], store: Store, most: int) -> tuple[list[SeedState], dict]:
    """Every seed of every arm: the first look's seeds (train.seeds) always, later ones up to `most` when
    the store has a run of them; and the finished and diverged seeds' outcomes per arm label (for the
    figures). An arm of another's identity (latent at 100 is base) is listed once, under that arm."""
    listed, outcomes = [], {}
    for arm in (a for a in arms if not a.same_as):
        runs = store.runs(arm.experiment)
        outcomes[arm.label] = []
        for seed in range(arm.config.train.seed, arm.config.train.seed + max(most, arm.config.train.seeds)):
            done = latest(runs, arm, seed, is_outcome)
            if done is not None:
                o = outcome(store, done, arm)
                outcomes[arm.label].append(o)
                if o.outcome == "finished":
                    end = o.collapse or "escaped"
                    step = max([s for s, _ in o.fid_history], default=0)
                else:
                    end, step = o.reason or "a non-finite loss", o.last_step or 0
                history = o.fid_history
                listed.append(SeedState(arm.label, seed, o.outcome, o.run_id, step,
                                        o.metrics.get("fid", history[-1][1] if history else math.nan),
                                        history[-1][0] if history else 0, end, o.escaped_since))
                continue
            going = latest(runs, arm, seed, lambda r: is_alive(r) or is_resumable(r))
            if going is not None:
                run_id = going.info.run_id
                history = store.history(run_id, "eval/fid")
                floor = {k[len("floor/"):]: v for k, v in going.data.metrics.items() if k.startswith("floor/")}
                judged = evaluations_judged(store, run_id, floor, arm.config.eval)
                now = ("" if not judged else "collapsed at its last evaluation" if judged[-1][1] else
                       "not collapsed at its last evaluation")
                # losses are logged in chunks; the heartbeat says the step it was at, a minute or so ago
                step = max(last_step(store, going), int(going.data.tags.get("heartbeat.step", 0)))
                listed.append(SeedState(arm.label, seed, "training" if is_alive(going) else "stopped", run_id,
                                        step, history[-1][1] if history else math.nan,
                                        history[-1][0] if history else 0, now))
            elif seed < arm.config.train.seed + arm.config.train.seeds:
                listed.append(SeedState(arm.label, seed, "not started"))
    return listed, outcomes


def report(arms: list[Arm], datasets: dict, store: Store, out: Path, most: int) -> tuple[str, Path]:
    """Write out/report.md and the finished seeds' figures; returns (terminal text, out)."""
    listed, outcomes = states(arms, store, most)
    epoch = epoch_length(arms, datasets)
    total = {a.label: loop.total_steps(a.config, len(datasets[data_key(a.config)].train_images)) for a in arms}
    planned = sum(total[s.arm] for s in listed)
    trained = sum(min(s.step, total[s.arm]) for s in listed)
    when = time.strftime("%Y-%m-%d %H:%M %Z")
    lines = ["# Where the comparison stands", "",
             f"Read from the store at {when}: {trained:,} of the {planned:,} steps of the seeds listed "
             f"({100 * trained / max(1, planned):.0f}%). Nothing here was trained, claimed or decided: a "
             "design decides an arm only at its looks, so this page has no verdicts; the comparison's own "
             "command gives them.", "",
             "| arm | finished | escaped | collapsed | diverged | training | stopped | not started "
             "| final FID of the escaped | final FID of the collapsed |", "|---|---|---|---|---|---|---|---|---|---|"]
    for arm in (a for a in arms if not a.same_as):
        mine = [s for s in listed if s.arm == arm.label]
        done = [s for s in mine if s.state == "finished"]
        escaped = [s for s in done if s.end == "escaped"]
        count = {k: sum(s.state == k for s in mine) for k in ("diverged", "training", "stopped", "not started")}
        lines.append(f"| {arm.label} | {len(done)} | {len(escaped)} | {len(done) - len(escaped)} | "
                     + " | ".join(str(count[k]) for k in count) + " | "
                     + (", ".join(num(s.fid) for s in escaped) or "-") + " | "
                     + (", ".join(num(s.fid) for s in done if s not in escaped) or "-") + " |")
    lines += ["", "Every seed: a finished seed's final scores and when it escaped (the first evaluation of "
              "the uncollapsed stretch it ended in); a seed in training or stopped, its last evaluation "
              "(on fewer images than the final one, when eval.interim_images is set).", "",
              "| arm | seed | run id | state | steps | FID | now |", "|---|---|---|---|---|---|---|"]
    for s in listed:
        where = "final" if s.state == "finished" else f"at {at_step(s.fid_step, epoch)}"
        fid = "-" if math.isnan(s.fid) else f"{num(s.fid)} {where}"
        end = f"escaped since {at_step(s.since, epoch)}" if s.since is not None else s.end
        steps = f"{s.step:,} of {total[s.arm]:,}" if s.run_id else "-"
        lines.append(f"| {s.arm} | {s.seed} | {s.run_id or '-'} | {s.state} | {steps} | {fid} | "
                     f"{end.replace('|', '/') or '-'} |")
    drawn = [replace(a, runs=outcomes[a.label]) for a in arms if not a.same_as and outcomes[a.label]]
    out.mkdir(parents=True, exist_ok=True)
    if drawn:
        figures(drawn, store, out, epoch)
        lines += ["", "The finished seeds:", "", "![final FID, every seed](outcomes.png)", "",
                  "![FID over training](fid_over_training.png)", "", "![samples](samples.png)"]
    (out / "report.md").write_text("\n".join(lines) + "\n")
    text = "\n".join(lines[2:4 + len([a for a in arms if not a.same_as]) + 2])
    return text, out
