"""The comparison in words, and as data: the Markdown report, the terminal table, the settings line, and
report.json (the same answer for scripts and tests)."""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path

from harness.compare.arms import Arm, collapse_over_training, data_key, fewer_before_last, floors
from harness.compare.design import POWER_AT, ArmResult, Design
from harness import statistics as st
from metrics.scorer import RANGE


@dataclasses.dataclass(frozen=True)
class Written:
    """What a compare command wrote: its terminal text, report.md, the figures it drew beside it (none for a
    figure with nothing to draw), and the report's MLflow run (None for --so-far and for one of --workers
    K, which record none)."""
    text: str
    report: Path
    figures: list[Path]
    run_id: str | None = None


def num(x: float) -> str:
    """Few digits, no exponents for the magnitudes these metrics take."""
    a = abs(x)
    return f"{x:.0f}" if a >= 100 else f"{x:.1f}" if a >= 10 else f"{x:.2f}" if a >= 0.1 else f"{x:.3g}"


def _fmt(triple, none: str = "-", alone: str = "") -> str:
    """A value with its interval; `none` when there is no value, `alone` after a value with no interval."""
    mean, low, high = triple
    if math.isnan(mean):
        return none
    if math.isnan(low):
        return num(mean) + (f" ({alone})" if alone else "")
    return f"{num(mean)} [{num(low)}, {num(high)}]"


def _diff_cell(r: ArmResult) -> str:
    """The escaped-FID difference from base with its interval, or why there is none."""
    return _fmt(r.quality.diff, "no interval: under 2 escaped a side", "no spread: no interval")


def _rate(k: int, n: int, interval: tuple) -> str:
    return "no seeds" if n == 0 else f"{k} of {n} [{interval[0]:.2f}, {interval[1]:.2f}]"


def design_paragraph(design: Design, sequential: bool) -> str:
    """What decides an arm, at what level, and how much the escape rule can see at these seeds."""
    rule, ranks = design.escape_rule(), design.rank_rule()
    k = design.k
    looks = (f"at looks of {design.first} to {design.most} seeds a side" if sequential and design.first < design.most
             else f"at {design.most} seeds a side" if sequential else
             f"at {design.most} seeds a side (an arm with fewer: the same rule computed for its own counts)")
    who = (f"Only the primary arm, {design.primary}, is decided (K = 1, the full alpha); the others are estimates. "
           if design.primary else f"Each of the K = {k} arms is decided against base. ")
    if rule.gamma > 0:
        escape = (f"Fisher's exact test at the nominal level {rule.gamma:.3g} {looks}: the largest level whose "
                  f"worst-case type I error over a common escape probability in [0.01, 0.99] is at most "
                  f"{design.escape_level:.3g} (exactly {rule.worst:.3g}, at p = {rule.p_worst:.2f}, by enumerating "
                  f"every outcome). Its power is small at these seeds: an arm that escapes on every seed against "
                  f"base's {POWER_AT[0]:g} is found to escape more often with probability {rule.power(*POWER_AT):.0%}.")
    else:
        escape = (f"Fisher's exact test {looks}: no split of these seeds can be significant at "
                  f"{design.escape_level:.3g}, so the escape rate cannot decide here; its estimates are reported.")
    margin = (f"inside ±{num(design.margin)} FID (the margin, fixed before the first look: {design.margin_source})"
              if design.margin is not None else "never: no margin was fixed in advance, so no equivalence is claimed")
    rank = (f"an exact Mann-Whitney test at the nominal level {ranks.gamma:.3g}"
            + (f" (calibrated on {ranks.trials:,} seeded simulated comparisons: type I error {ranks.rate:.4f} ± "
               f"{ranks.mc_se:.4f}, at most {design.rank_level:.3g})" if ranks.trials else
               f" (exact at one look, at most {design.rank_level:.3g})")
            if ranks.gamma > 0 else f"an exact Mann-Whitney test that cannot reach {design.rank_level:.3g} at these seeds")
    return (f"**How an arm is decided.** GAN seeds at this length are bimodal: a seed escapes its early collapse "
            f"(finished, final samples not judged collapsed) or it does not, so no verdict rests on a mean FID over "
            f"both. {who}alpha = {design.alpha} is split evenly between two endpoints, each over the K arms, so any "
            f"wrong better/worse call over all arms and both endpoints has probability at most {design.alpha} (exact "
            f"for escape; for escaped quality approximate, checked by simulation: docs/statistics.md). "
            f"**Escape** (primary, at {design.escape_level:.3g} an arm): {escape} **Quality among escaped seeds** "
            f"(secondary, at {design.quality_level:.3g} an arm): the escaped seeds' final FID, arm minus base "
            f"(negative is better), by "
            + ("repeated confidence intervals (Lan-DeMets "
               + ("Pocock-type" if design.spending == "pocock" else f"Hwang-Shih-DeCani, gamma {design.gamma:g}")
               + " spending, Student t quantiles at Welch's degrees of freedom) " if sequential else
               "Welch's interval at that level ")
            + "with each side's variance at least the escaped seeds' variance pooled over base and every arm (2 or "
              "3 seeds of one cluster, early or late escapers, do not make a narrow interval), "
            + f"once each side has 2 or more escaped seeds: better or worse when it excludes 0, equivalent {margin}. "
            f"An arm is never called equivalent outright: escape rates cannot be shown equal with a handful of seeds. "
            f"**Rank summary** (its own family, not part of the verdict): P(FID lower than base's), every seed "
            f"counted (no FID ranks worst; ties count half), with {rank}.")


def confirmations_section(arms: list[Arm], results: list[ArmResult]) -> list[str]:
    """Each study's best trial beside its confirmation on fresh seeds: the winner's curse, visible."""
    confirmed = [a for a in arms if a.best]
    if not confirmed:
        return []
    by_label = {r.label: r for r in results}
    lines = ["## Optuna's best, confirmed", "",
             "A study's best trial is one seed's score, chosen as the best of many: its FID is biased low. Each "
             "best was trained again here on seeds no trial used, at the study's settings, as an arm like the "
             "others (it is in the tables above).", "",
             "| arm | best trial | the trial's FID | confirmed: escaped FID, mean [t 95%] (escaped of seeds) | seeds | "
             "trial minus confirmed |", "|---|---|---|---|---|---|"]
    for arm in confirmed:
        b, r = arm.best, by_label[arm.label]
        fid = r.quality.fid
        gap = "no escaped seed" if math.isnan(fid[0]) else num(b["value"] - fid[0])
        params = ", ".join(f"{k.split('.')[-1]}={v:.3g}" if isinstance(v, float) else f"{k.split('.')[-1]}={v}"
                           for k, v in b["params"].items())
        lines.append(f"| {arm.label} | {b['trial']} ({params}; run {b['run_id'][:8]}) | {num(b['value'])} | "
                     f"{_fmt(fid, 'none escaped', 'one seed')} ({r.escape.k} of {r.seeds}) | {arm.seeds[0]}-{arm.seeds[-1]} | {gap} |")
    return lines + [""]


def decisions_section(decisions: dict, family) -> list[str]:
    """The sequential design's record and each arm's decision, with every look (harness/compare/looks.py)."""
    design = family.design
    lines = ["## The decisions: seeds spent until each arm is decided", "",
             f"A sequential design, registered in the store before its first look (design run {family.run_id}). "
             + design_paragraph(design, sequential=True)
             + " An arm stops at the first look where it is better, worse or mixed; the difference at its stopping "
             "look leans away from 0 (arms stop when they happen to look extreme); its interval still holds."
             + (f" A budget of {family.budget} runs (base's and the arms' seeds) was set with the design: when a look "
                "would pass it, arms got their seed in the order named, and those left without one ended at their "
                "last look." if family.budget else ""), "",
             "| arm | decision | seeds a side | escaped, arm vs base | Δ escaped FID [repeated CI] | every look: "
             "seeds, escaped arm vs base, Δ escaped FID | note |", "|---|---|---|---|---|---|---|"]
    for label, d in decisions.items():
        r = d.result
        looks = "; ".join(f"{h.look}: {h.escape.k} vs {h.escape.k_ref}, {_diff_cell(h)}" for h in d.history)
        lines.append(f"| {_cell(label)} | **{_cell(d.verdict)}** | {d.seeds} | {r.escape.k} of {r.seeds} vs "
                     f"{r.escape.k_ref} of {r.escape.n_ref} | {_diff_cell(r)} | {looks} | "
                     f"{_cell(d.note or 'none')} |")
    for run_id, arms, made in family.others:
        said = "; ".join(f"{arm}: {v}" for arm, v in made.items()) or "no decision recorded"
        lines += ["", f"Another family over some of these arms has its own design (run {run_id}, arms "
                  f"{', '.join(arms)}): {said}. Its decisions are not pooled with these."]
    lines += ["", "The tables below describe each arm's seeds at its last look (base: at the last look of all). "
              "The decisions are the design's, above.", ""]
    return lines


def markdown(results: list[ArmResult], arms: list[Arm], settings: str, left: list, design: Design,
             sequential: list | None = None, per_epoch: int | None = None) -> str:
    """The report. per_epoch: steps in an epoch (arms.epoch_length), to say the epoch beside each step."""
    e = arms[0].config.eval
    by_label = {a.label: a for a in arms}
    lines = ["# Ablation report", "", settings, "", *(sequential or [])]
    if not sequential:
        lines += [design_paragraph(design, sequential=False), ""]
    lines += ["## The answer: escape, and quality among the escaped", "",
              "Per arm: seeds, and how many escaped (finished with final samples not judged collapsed: at least "
              f"{e.collapse_modes:g} of the real digits' classes and recall at least {e.collapse_recall:g} of theirs), "
              "with an exact (Clopper-Pearson) 95% interval; the difference of escape rates from base with Newcombe's "
              "95% interval; the posterior probability that the arm escapes more often than base (uniform priors); "
              "the escaped seeds' mean FID with a Student t 95% interval (clipped at 0, as FID is); its difference "
              "from base's escaped seeds with the design's interval; P(FID lower), a seed of the arm against a seed "
              "of base, over every seed, with its exact p; the mean FID over every finished seed, escaped or not, "
              "**descriptive only** (a mean over two modes describes no seed).", "",
              "| arm | escaped of seeds [95%] | Δ escape rate vs base [95%] | P(escapes more) | escaped FID (n) [t 95%] "
              "| Δ escaped FID vs base [design's CI] | P(FID lower) (exact p, decision) | mean FID, all finished (descriptive) "
              "| verdict |", "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        arm = by_label[r.label]
        base_like = r.verdict == "reference" or math.isnan(r.escape.diff[0])
        d_rate = "reference" if r.verdict == "reference" else _fmt(r.escape.diff, "not compared")
        more = "-" if base_like else f"{r.escape.prob_more:.2f}"
        fid = _fmt(r.quality.fid, "none escaped", "one seed" if r.quality.n == 1 else "all alike: no interval") + (
            f" (n={r.quality.n})")
        d_fid = "reference" if r.verdict == "reference" else "not compared" if base_like else _diff_cell(r)
        rank = ("-" if base_like else "no seeds" if math.isnan(r.rank.p) else
                f"{r.rank.improvement:.2f} ({r.rank.p:.2g}{', ' + r.rank.decision if r.rank.decision else ''})")
        whole = _mean_cell(arm.values("fid"), RANGE["fid"], none="no finished seed")
        verdict = r.verdict + (f"; {r.note}" if r.note else "")
        lines.append(f"| {_cell(r.label)} | {_rate(r.escape.k, r.seeds, r.escape.interval)} | {d_rate} | {more} | {fid} | "
                     f"{d_fid} | {rank} | {whole} | {_cell(verdict)} |")
    diverged = sum(r.diverged for r in results)
    lines += ["", f"Seeds that diverged (a non-finite loss: no final metrics) count as not escaped: {diverged} in all"
              + (" (" + ", ".join(f"{r.label} {r.diverged}" for r in results if r.diverged) + ")." if diverged else ".")]
    steps, over = collapse_over_training(arms)
    if steps:
        lines += ["", "## Collapse over training", "",
                  "Seeds collapsed at each evaluation, by the rule the final samples are judged with, of the seeds "
                  "evaluated at that step; a seed can collapse and recover. A diverged seed is evaluated until it "
                  "stopped, and named as diverged at every later evaluation. A finished seed's last evaluation is "
                  "its final samples, counted above.", "",
                  "| arm | " + " | ".join(at_step(s, per_epoch) for s in steps) + " |", "|---|" + "---|" * len(steps)]
        lines += [f"| {label} | " + " | ".join(_over_cell(*cell) for cell in cells) + " |" for label, cells in over]
    lines += ["", "## Every final metric of the escaped seeds", "", "Means over each arm's escaped seeds (n) with "
              "Student t 95% intervals, clipped to where a metric can lie (precision and recall in [0, 1], modes in "
              "[0, 10], IS in [1, 10]). The floor is the same metrics for as many real training digits as images "
              "scored: the best a generator could hope for (logged with every run as `floor/*`).", "",
              "| arm | n | FID | IS | KID | modes | precision | recall |", "|---|---|---|---|---|---|---|---|"]
    for arm in arms:
        cells = [_mean_cell(arm.values(m, escaped=True), RANGE[m]) for m in ("fid", "is", "kid", "modes", "precision",
                                                                               "recall")]
        lines.append(f"| {_cell(arm.label)} | {arm.count('escaped')} | " + " | ".join(cells) + " |")
    for dataset, floor in floors(arms):
        lines.append(f"| *floor: real digits ({dataset})* | - | " + " | ".join(
            num(floor[m]) if m in floor else "-" for m in ("fid", "is", "kid", "modes", "precision", "recall")) + " |")
    groups = {a.group for a in arms}
    if len(groups) > 1:
        lines += ["", "Arms of different data, backend, platform, precision, code version or metric settings were "
                  "not pooled or compared: " + "; ".join(f"{g[0]} ({g[1]}), {g[2]} on {g[3]}, N={g[7]}"
                                                        for g in groups) + "."]
    lines += ["", "## Every run", "", "Each seed's outcome, with its full MLflow run id (an arm with another's "
              "identity has its runs listed once, under the arm that made them); an escaped seed's first "
              "evaluation of the uncollapsed stretch it ended in (early and late escapers may end far apart).", "",
              "| arm | seed | run id | outcome | final FID | at the end | escaped since |",
              "|---|---|---|---|---|---|---|"]
    for arm in (a for a in arms if not a.same_as):
        for r in sorted(arm.runs, key=lambda r: r.seed):
            fid = r.metrics.get("fid", float("nan"))
            if r.outcome != "finished":
                end = (r.reason or "no reason recorded")[:100]
            elif not r.judged:
                end = "not judged: no finite modes and recall"
            else:
                end = r.collapse or "escaped"
            since = r.escaped_since
            lines.append(f"| {_cell(arm.label)} | {r.seed} | {r.run_id} | {r.outcome} | "
                         f"{'-' if math.isnan(fid) else num(fid)} | {_cell(end)} | "
                         f"{'-' if since is None else at_step(since, per_epoch)} |")
    if left:
        lines += ["", f"## Runs left out ({len(left)})", ""]
        by_reason: dict = {}
        for experiment, run_id, _, reason in left:
            by_reason.setdefault((experiment, reason), []).append(run_id[:8])
        lines += [f"- {experiment}: {reason}: {len(ids)} run{'s' * (len(ids) > 1)} ({' '.join(ids)})"
                  for (experiment, reason), ids in sorted(by_reason.items())]
    return "\n".join(lines + [""])


def at_step(step: int, per_epoch: int | None) -> str:
    """A step, with its epoch when the runs were asked in epochs (per_epoch steps each): step 2,808 (epoch 12)."""
    return f"step {step:,}" + (f" (epoch {round(step / per_epoch, 1):g})" if per_epoch else "")


def _over_cell(collapsed: int, evaluated: int, diverged: int) -> str:
    if not evaluated:
        return f"{diverged} diverged" if diverged else "-"
    return f"{collapsed} of {evaluated}" + (f", {diverged} diverged" if diverged else "")


def _cell(text: str) -> str:
    """Text from a run's tags, safe inside a Markdown table cell."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def _mean_cell(values, bounds=(-math.inf, math.inf), none: str = "none escaped") -> str:
    """A mean over seeds with its t interval, or words: none, one seed, or all alike (no interval)."""
    return _fmt(st.mean_ci(values, bounds), none, "one seed" if len(values) == 1 else "all alike: no interval")


def terminal_table(results: list[ArmResult]) -> str:
    header = f"{'arm':<26} {'escaped':>8}  {'escaped FID [t 95%]':<22} {'Δ escaped FID [CI]':<24} {'P(lower)':>8}  verdict"
    out = [header, "-" * len(header)]
    for r in results:
        rank = "-" if math.isnan(r.rank.improvement) else f"{r.rank.improvement:.2f}"
        out.append(f"{r.label:<26} {f'{r.escape.k}/{r.seeds}':>8}  {_fmt(r.quality.fid, 'none'):<22} "
                   f"{_fmt(r.quality.diff, '-'):<24} {rank:>8}  {r.verdict}")
    return "\n".join(out)


def settings_line(arms: list[Arm], datasets: dict, left_out: list) -> str:
    """Every setting of the comparison in plain words, the identity included."""
    c, i = arms[0].config, arms[0].identity
    n_scored = c.eval.n_images or len(datasets[data_key(c)].test_images)
    versions = sorted({f"{k[len('version.'):]} {v}" for a in arms for r in a.runs for k, v in r.versions.items()})
    interim = (f" and {c.eval.interim_images} at the evaluations before it (FID reads higher on fewer images: "
               "compare a curve's earlier points with each other, not with its last)"
               if fewer_before_last(c, n_scored) else "")
    return (f"Settings: dataset {arms[0].dataset} (fingerprint {i['data']}); "
            f"{c.train.steps or str(c.train.epochs) + ' epochs'}{' steps' if c.train.steps else ''} at batch "
            f"{c.train.batch_size}; widths G {c.model.g_filters} / D {c.model.d_filters}; N = {n_scored} generated "
            f"images scored against the held-out reference at the end{interim}; {_seed_counts(arms)} starting at "
            f"seed {c.train.seed}. Identity: backend {i['backend']} on {i['platform']}, {i['precision']}, numerics "
            f"v{i['numerics']}, metrics v{i['metrics']}. Libraries: {', '.join(versions) or 'unknown'}. "
            f"{len(left_out)} runs of these experiments left out (listed below).")


def _seed_counts(arms: list[Arm]) -> str:
    """'5 seeds per arm', or each count where arms differ ('5 seeds for base, 4 for tanh')."""
    counts = {a.label: len(a.runs) for a in arms if not a.same_as}
    if len(set(counts.values())) <= 1:
        n = next(iter(counts.values()), 0)
        return f"{n} seed{'s' * (n != 1)} per arm"
    return "seeds per arm: " + ", ".join(f"{label} {n}" for label, n in counts.items())


def _finite(value):
    """JSON without NaN: nan and inf become null, through dicts, lists and tuples."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def as_data(results: list[ArmResult], arms: list[Arm], training, design_run: str | None = None) -> dict:
    """The report as data (report.json): per arm its verdict, endpoints and every seed's run; what this
    command trained, resumed and waited for, each plan it printed, each look (--until-decided: its arms,
    the runs the family held, the arms still undecided, the most runs still to come), and the runs left
    out with why.
    training: schedule.Training; design_run: the --until-decided design run's id."""
    by_label = {a.label: a for a in arms}
    out_arms = []
    for r in results:
        arm = by_label.get(r.label)
        runs = [{"run_id": o.run_id, "seed": o.seed, "outcome": o.outcome, "escaped": o.escaped,
                 "escaped_since": o.escaped_since, "collapse": o.collapse, "metrics": o.metrics}
                for o in (arm.runs if arm else [])]
        out_arms.append({**dataclasses.asdict(r), "experiment": arm.experiment if arm else None,
                         "sweep_value": arm.sweep_value if arm else {}, "same_as": arm.same_as if arm else "",
                         "runs": runs})
    return _finite({
        "arms": out_arms, "design_run": design_run, "trained": training.trained, "resumed": training.resumed,
        "waited_for": [{"arm": label, "seed": seed, "holder": who} for label, seed, who in training.waited],
        "plans": training.plans, "looks": training.looks,
        "left_out": [{"experiment": e, "run_id": run_id, "kind": kind, "reason": reason}
                     for e, run_id, kind, reason in training.left_out]})
