"""The comparison in words: the Markdown report, the terminal table and the settings line."""
from __future__ import annotations

import math

import numpy as np

from harness import statistics as st
from harness.compare.analysis import EFFECT_OF_INTEREST
from harness.compare.arms import Arm, collapse_over_training, data_key, fewer_before_last, floors


def _num(x: float) -> str:
    """Few digits, no exponents for the magnitudes these metrics take."""
    a = abs(x)
    return f"{x:.0f}" if a >= 100 else f"{x:.1f}" if a >= 10 else f"{x:.2f}" if a >= 0.1 else f"{x:.3g}"


def _fmt(triple) -> str:
    mean, low, high = triple
    if math.isnan(mean):
        return "-"
    if math.isnan(low):
        return _num(mean)
    return f"{_num(mean)} [{_num(low)}, {_num(high)}]"


def _interval_note(r: dict) -> str:
    """'†' where the unadjusted interval excludes 0 but Holm's correction keeps the verdict from it."""
    d = r.get("d_fid")
    excludes = d is not None and not math.isnan(d[1]) and (d[1] > 0 or d[2] < 0)
    significant = not math.isnan(r.get("p_holm", float("nan"))) and r["p_holm"] < st.ALPHA
    return " †" if excludes and not significant else ""


def _power_cells(r: dict) -> str:
    """The power columns, or in words why a number cannot be given."""
    if "detectable" not in r:
        return "- | -"
    if math.isnan(r["detectable"]):
        return "cannot be computed: under 2 finished seeds a side | -"
    needed = r["needed"]
    seeds = "-" if needed < 0 else "over 10,000" if needed >= 10_000 else f"{needed:,}"
    return f"{_num(r['detectable'])} | {seeds} (Δ {_num(r['effect_of_interest'])})"


def _rate(r: dict, outcome: str, n_key: str) -> str:
    if f"{outcome}_p" not in r or math.isnan(r[f"{outcome}_p"]):
        return f"{r[outcome]} of {r[n_key]}"
    needs = r[f"{outcome}_needs"]
    could = (f"significant from {needs} of {r[n_key]} against none" if needs
             else "no split of these seeds could be significant")
    return f"{r[outcome]} of {r[n_key]}: p {r[outcome + '_p']:.2g} (Holm {r[outcome + '_p_holm']:.2g}); {could}"


def decisions_section(decisions: dict, fam, base_fid: list[float]) -> list[str]:
    """The sequential design's record and each arm's decision (harness/compare/looks.py). base_fid: base's final
    FIDs at the last look, to set the margin beside."""
    from harness import sequential as sq
    from harness.compare.looks import ENDPOINT, WIDE_MARGIN
    design = fam.design
    k = len(design.arms)
    shape = ("Lan-DeMets Pocock-type" if design.spending == "pocock"
             else f"Hwang-Shih-DeCani (gamma {design.gamma:g})")
    if fam.pilot:
        detect, equivalent = sq.fixed_seeds(design.margin, fam.pilot[0], design.level)
        fixed = (f"{'over 10,000' if detect >= 10_000 else detect} to detect a difference of the margin, "
                 f"{'over 10,000' if equivalent >= 10_000 else equivalent} to show equivalence within it")
    else:
        fixed = "- (no pilot: the margin was given)"
    scale = ""
    if base_fid:  # a margin near base's own FID makes 'equivalent' say little; the reader should see it
        mean = float(np.mean(base_fid))
        scale = (f" The margin is {design.margin / mean:.0%} of base's mean final FID ({_num(mean)})"
                 + (": an equivalence this wide says little about whether an arm differs from base."
                    if design.margin >= WIDE_MARGIN * mean else "."))
    lines = ["## The decisions: seeds spent until each arm is decided", "",
             f"A sequential design, registered in the store before its first look (design run {fam.run_id}): each "
             f"of the K = {k} arms against base by repeated confidence intervals for the FID difference (arm minus "
             f"base; negative is better) at level {design.alpha}/{k} = {design.level:.3g} each (Bonferroni: about "
             f"{1 - design.alpha:.0%} over the {k} together), {shape} alpha spending, looks at {design.first} to "
             f"{design.most} seeds a side, Student t quantiles at each look's Welch degrees of freedom (an "
             "approximation: conservative with equal spreads, somewhat liberal when one arm's spread is 2 to 3 times "
             "the other's). The intervals of all looks hold together whatever the stopping, so an arm stops as "
             f"better or worse when its interval excludes 0, as equivalent when it lies inside ±{_num(design.margin)} "
             f"FID (the margin, {design.margin_source}), and is undecided if neither holds at {design.most} seeds."
             f"{scale} Endpoint: {ENDPOINT}. The difference at an arm's stopping look leans away from 0 (arms stop "
             "when they happen to look extreme); its interval still holds."
             + (f" A budget of {fam.budget} runs (base's and the arms' seeds) was set with the design: when a look "
                "would pass it, arms got their seed in the order named, and those left without one ended undecided "
                "at their last look." if fam.budget else ""), "",
             "| arm | decision | seeds a side | Δ FID at its last look [repeated CI] | every look: seeds Δ [CI] | "
             "a fixed design at the pilot's spread would need (seeds a side) | note |",
             "|---|---|---|---|---|---|---|"]
    for label, d in decisions.items():
        looks = "; ".join(f"{n}: {_fmt((dd, lo, hi))}" for n, dd, lo, hi in d.history)
        lines.append(f"| {label} | **{d.verdict}** | {d.seeds} | {_fmt(d.interval)} | {looks} | {fixed} | "
                     f"{d.note or '-'} |")
    for run_id, arms, made in fam.others:
        said = "; ".join(f"{arm}: {v}" for arm, v in made.items()) or "no decision recorded"
        lines += ["", f"Another family over some of these arms has its own design (run {run_id}, arms "
                  f"{', '.join(arms)}): {said}. Its decisions are not pooled with these."]
    lines += ["", "The tables below describe each arm's seeds at its last look (base: at the last look of all); their "
              "p-values are descriptive. The decisions are the design's, above.", ""]
    return lines


def confirmations_section(arms: list[Arm], rows: list[dict]) -> list[str]:
    """Each study's best trial beside its confirmation on fresh seeds: the winner's curse, visible."""
    confirmed = [a for a in arms if a.best]
    if not confirmed:
        return []
    by_label = {r["arm"]: r for r in rows}
    lines = ["## Optuna's best, confirmed", "",
             "A study's best trial is one seed's score, chosen as the best of many: its FID is biased low. Each "
             "best was trained again here on seeds no trial used, at the study's settings, as an arm like the "
             "others (it is in the tests above).", "",
             "| arm | best trial | the trial's FID | confirmed FID, mean [t 95%] (n) | seeds | trial minus confirmed |",
             "|---|---|---|---|---|---|"]
    for arm in confirmed:
        b, fid = arm.best, by_label[arm.label]["fid"]
        gap = "-" if math.isnan(fid[0]) else _num(b["value"] - fid[0])
        params = ", ".join(f"{k.split('.')[-1]}={v:.3g}" if isinstance(v, float) else f"{k.split('.')[-1]}={v}"
                           for k, v in b["params"].items())
        lines.append(f"| {arm.label} | {b['trial']} ({params}; run {b['run_id'][:8]}) | {_num(b['value'])} | "
                     f"{_fmt(fid)} (n={len(arm.values('fid'))}) | {arm.seeds[0]}-{arm.seeds[-1]} | {gap} |")
    return lines + [""]


def markdown(rows: list[dict], arms: list[Arm], settings: str, left: list, sequential: list | None = None) -> str:
    e = arms[0].config.eval
    tests = max((r["tests"] for r in rows), default=1)
    lines = ["# Ablation report", "", settings, "", *(sequential or []),
             "## The answer: final classifier-FID against base", "",
             "Per arm: seeds that finished, diverged (a non-finite loss: it counts against the arm, and has no "
             "final metrics) and, of the finished, collapsed (judged from the final samples: fewer than "
             f"{e.collapse_modes:g} of the real digits' classes, or recall under {e.collapse_recall:g} of theirs). "
             "FID is the mean over the finished seeds (n) with a Student t 95% interval. Δ FID is the "
             "difference from base (negative is better) with a Welch 95% interval, **unadjusted** for the "
             f"{tests} comparisons. p is Welch's t-test against base, then Holm-corrected over the {tests} arms "
             f"tested; a verdict needs at least {st.MIN_SEEDS_FOR_VERDICT} finished seeds a side and Holm p < "
             f"{st.ALPHA}. † marks an unadjusted interval that excludes 0 where Holm's correction does not "
             "reach significance. An arm with more failed seeds (diverged plus collapsed) than base is never "
             "called better. Power is of Welch's test at Holm's strictest level, alpha = "
             f"{st.ALPHA}/{tests} = {st.ALPHA / tests:.3g}: the smallest Δ these seeds detect with 80% power if "
             f"the spreads seen were the true ones, and the seeds a side that would detect a Δ of "
             f"{EFFECT_OF_INTEREST:.0%} of base's mean FID.", "",
             "| arm | finished | diverged | collapsed | FID (n) | Δ FID vs base (unadjusted) | p (Holm) | verdict | "
             f"detectable Δ, 80% power | seeds a side for Δ = {EFFECT_OF_INTEREST:.0%} of base |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        p = f"{r['p']:.3g} ({r['p_holm']:.3g})" if "p_holm" in r and not math.isnan(r["p_holm"]) else "-"
        d = _fmt(r["d_fid"]) + _interval_note(r) if "d_fid" in r else "-"
        lines.append(f"| {r['arm']} | {r['finished']} | {r['diverged']} | {r['collapsed']} | "
                     f"{_fmt(r['fid'])} (n={r['n_fid']}) | {d} | {p} | {r['verdict']} | {_power_cells(r)} |")
    tested = [r for r in rows if "p_ceiling" in r]
    if any(r["diverged"] for r in rows) and tested:
        lines += ["", "## Diverged seeds at a ceiling", "",
                  "The test above uses finished seeds only. Here each diverged seed counts at a fixed FID, the "
                  "ceiling: the worst final FID of any finished seed of the arms compared with it (same data, "
                  "backend and code), and Welch's test is run again on every seed, Holm-corrected over the arms.", "",
                  "| arm | seeds (diverged) | ceiling FID | Δ FID vs base, diverged at the ceiling | p (Holm) |",
                  "|---|---|---|---|---|"]
        for r in tested:
            p = f"{r['p_ceiling']:.3g} ({r['p_ceiling_holm']:.3g})" if not math.isnan(r["p_ceiling_holm"]) else "-"
            lines.append(f"| {r['arm']} | {r['n']} ({r['diverged']}) | {_num(r['ceiling'])} | "
                         f"{_fmt(r['d_fid_ceiling'])} | {p} |")
    elif tested:
        lines += ["", "No seed diverged, so the FID test above counts every seed."]
    lines += ["", "## Failures: diverged and collapsed seeds against base", "",
              "Fisher's exact test of each arm's rate against base's, Holm-corrected over the arms; with few "
              "seeds the smallest p a split can give may never reach the corrected level, and the table says "
              f"so instead of a verdict that cannot come (level {st.ALPHA}/the arms with a rate to test).", "",
              "| arm | diverged (of all seeds) | collapsed (of the finished) |", "|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['arm']} | {_rate(r, 'diverged', 'n')} | {_rate(r, 'collapsed', 'finished')} |")
    steps, over = collapse_over_training(arms)
    if steps:
        lines += ["", "## Collapse over training", "",
                  "Seeds collapsed at each evaluation, by the rule the final samples are judged with, of the seeds "
                  "evaluated at that step; a seed can collapse and recover. A diverged seed is evaluated until it "
                  "stopped, and named as diverged at every later evaluation. A finished seed's last evaluation is "
                  "its final samples, counted above.", "",
                  "| arm | " + " | ".join(f"step {s}" for s in steps) + " |", "|---|" + "---|" * len(steps)]
        lines += [f"| {label} | " + " | ".join(_over_cell(*cell) for cell in cells) + " |" for label, cells in over]
    lines += ["", "## Every final metric", "", "Means over the finished seeds with Student t 95% intervals, clipped to "
              "where a metric can lie (precision and recall in [0, 1], modes in [0, 10], IS in [1, 10]). The "
              "floor is the same metrics for as many real training digits as images scored: the best a generator "
              "could hope for (logged with every run as `floor/*`).", "",
              "| arm | FID | IS | KID | modes | precision | recall |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['arm']} | {_fmt(r['fid'])} | {_fmt(r['is'])} | {_fmt(r['kid'])} | {_fmt(r['modes'])} | "
                     f"{_fmt(r['precision'])} | {_fmt(r['recall'])} |")
    for dataset, floor in floors(arms):
        lines.append(f"| *floor: real digits ({dataset})* | " + " | ".join(
            _num(floor[m]) if m in floor else "-" for m in ("fid", "is", "kid", "modes", "precision", "recall")) + " |")
    groups = {a.group for a in arms}
    if len(groups) > 1:
        lines += ["", "Arms of different data, backend, platform, precision, code version or metric settings were "
                  "not pooled or compared: " + "; ".join(f"{g[0]} ({g[1]}), {g[2]} on {g[3]}, N={g[7]}"
                                                        for g in groups) + "."]
    lines += ["", "## Every run", "", "Each seed's outcome, with its full MLflow run id (a twin arm's runs are listed "
              "once, under the arm that made them).", "", "| arm | seed | run id | outcome | final FID | at the end |",
              "|---|---|---|---|---|---|"]
    for arm in (a for a in arms if not a.twin):
        for r in sorted(arm.runs, key=lambda r: r["seed"]):
            fid, m = r["metrics"].get("fid", float("nan")), r["metrics"]
            if r["outcome"] != "finished":
                end = (r.get("reason") or "-")[:100]
            elif any(math.isnan(m.get(k, float("nan"))) for k in ("modes", "recall")):
                end = "not judged: no finite modes and recall"
            else:
                end = r["collapse"] or "not collapsed"
            lines.append(f"| {_cell(arm.label)} | {r['seed']} | {r['run_id']} | {r['outcome']} | "
                         f"{'-' if math.isnan(fid) else _num(fid)} | {_cell(end)} |")
    if left:
        lines += ["", f"## Runs left out ({len(left)})", ""]
        by_reason: dict = {}
        for experiment, run_id, _, reason in left:
            by_reason.setdefault((experiment, reason), []).append(run_id[:8])
        lines += [f"- {experiment}: {reason}: {len(ids)} run{'s' * (len(ids) > 1)} ({' '.join(ids)})"
                  for (experiment, reason), ids in sorted(by_reason.items())]
    return "\n".join(lines + [""])


def _over_cell(collapsed: int, evaluated: int, diverged: int) -> str:
    if not evaluated:
        return f"{diverged} diverged" if diverged else "-"
    return f"{collapsed} of {evaluated}" + (f", {diverged} diverged" if diverged else "")


def _cell(text: str) -> str:
    """Text from a run's tags, safe inside a Markdown table cell."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def terminal_table(rows: list[dict]) -> str:
    header = (f"{'arm':<26} {'fin':>3} {'div':>3} {'col':>3}  {'FID [t 95%]':<22} {'Δ vs base [Welch 95%]':<26} "
              f"{'p Holm':>8}  verdict")
    out = [header, "-" * len(header)]
    for r in rows:
        p = f"{r['p_holm']:.3g}" if "p_holm" in r and not math.isnan(r["p_holm"]) else "-"
        d = _fmt(r["d_fid"]) + _interval_note(r) if "d_fid" in r else "-"
        out.append(f"{r['arm']:<26} {r['finished']:>3} {r['diverged']:>3} {r['collapsed']:>3}  {_fmt(r['fid']):<22} "
                   f"{d:<26} {p:>8}  {r['verdict']}")
    return "\n".join(out)


def settings_line(arms: list[Arm], datasets: dict, done: dict) -> str:
    """Every setting of the comparison in plain words, the identity included."""
    c, i = arms[0].config, arms[0].identity
    n_scored = c.eval.n_images or len(datasets[data_key(c)].test_images)
    versions = sorted({f"{k[len('version.'):]} {v}" for a in arms for r in a.runs for k, v in r["versions"].items()})
    interim = (f" and {c.eval.interim_images} at the evaluations before it (FID reads higher on fewer images: "
               "compare a curve's earlier points with each other, not with its last)"
               if fewer_before_last(c, n_scored) else "")
    return (f"Settings: dataset {arms[0].dataset} (fingerprint {i['data']}); "
            f"{c.train.steps or str(c.train.epochs) + ' epochs'}{' steps' if c.train.steps else ''} at batch "
            f"{c.train.batch_size}; widths G {c.model.g_filters} / D {c.model.d_filters}; N = {n_scored} generated "
            f"images scored against the held-out reference at the end{interim}; {c.train.seeds} seeds per arm starting at "
            f"{c.train.seed}. Identity: backend {i['backend']} on {i['platform']}, {i['precision']}, numerics "
            f"v{i['numerics']}, metrics v{i['metrics']}. Libraries: {', '.join(versions) or 'unknown'}. "
            f"{done['trained']} runs trained and {done['resumed']} resumed now, the rest reused; "
            f"{len(done['left_out'])} runs of these experiments left out (listed below).")
