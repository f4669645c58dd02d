"""The ablation answer: each experiment (and sweep value) over seeds against base, with t intervals,
Welch's t-test on FID, Holm's correction, power, failure rates, a Markdown report, figures, and an
MLflow run of its own (harness/statistics.py holds the statistics).

Runs are pooled only within one run identity (harness/identity.py). A seed's outcome is its latest run
of the arm's identity that finished or diverged: a divergence counts against the variant, and is
reused, not retrained; runs that stopped on an error are trained again, interrupted ones resumed.
Every run of the compared experiments that the report does not use is listed with the reason.
"""
from __future__ import annotations

import math
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib.image as mpimg
import numpy as np

from harness import config as cfg
from harness import identity, loop, machine, models, plan, plots, registry, tracking
from harness import run as run_lib
from harness import statistics as st
from harness.config import Config
from metrics import collapse
from metrics.scorer import LOWER_IS_BETTER, RANGE

METRICS = ("fid", "is", "kid", "modes", "precision", "recall")
REPORT_EXPERIMENT = "compare"
_NOT_SEED_RUNS = ("group", "study", "report")  # `kind` tags of parent and report runs


@dataclass
class Arm:
    """One experiment at one sweep value: the unit compared against base."""
    experiment: str
    point: dict
    config: Config
    dataset: str  # the name of the data actually used
    identity: dict  # harness/identity.py: only runs with exactly this identity are pooled
    runs: list = field(default_factory=list)  # one outcome per seed: see _outcome()
    twin: str = ""  # label of an earlier arm with this very identity (latent at 100 is base): its runs are used

    @property
    def digest(self) -> str:
        return identity.digest(self.identity)

    @property
    def seeds(self) -> list[int]:
        return [self.config.train.seed + i for i in range(self.config.train.seeds)]

    @property
    def label(self) -> str:
        if not self.point:
            return self.experiment
        return self.experiment + "[" + ",".join(f"{k.split('.')[-1]}={v}" for k, v in self.point.items()) + "]"

    @property
    def group(self) -> tuple:
        """Arms are only compared within one data, backend, platform, precision, code version and
        metric setting: everything in the identity but the config under study."""
        i, e = self.identity, self.config.eval
        return (self.dataset, i["data"], i["backend"], i["platform"], i["precision"], i["numerics"], i["metrics"],
                e.n_images, e.kid_subsets, e.kid_subset_size)

    def finished(self) -> list[dict]:
        return [r for r in self.runs if r["outcome"] == "finished"]

    def values(self, metric: str) -> list[float]:
        """Final values over the seeds that finished (a diverged seed has none)."""
        return [r["metrics"][metric] for r in self.finished() if metric in r["metrics"]]

    def count(self, outcome: str) -> int:
        if outcome == "collapsed":
            return sum(bool(r["collapse"]) for r in self.finished())
        return sum(r["outcome"] == outcome for r in self.runs)


def collect(names: list[str], smoke: bool, flags: dict, sets: list[str], backend: str | None = None,
            platform: str | None = None, sweeps: dict | None = None) -> tuple[list[Arm], dict]:
    """Arms for the named experiments (base first), with the datasets they use; backend and platform: of
    runs made elsewhere (an accelerator's, imported), instead of this machine's; sweeps: key -> the
    values of that sweep to compare (default: all of them)."""
    names = list(dict.fromkeys(["base", *names]))
    unswept = [k for k in (sweeps or {}) if not any(k in registry.load(n).sweep for n in names)]
    if unswept:
        raise cfg.ConfigError(f"--sweep {unswept[0]}: no experiment compared here sweeps it "
                              f"(named: {', '.join(names)}).")
    datasets: dict = {}
    classifiers: dict = {}
    arms = []
    for name in names:
        experiment, config = registry.resolve(name, smoke, flags, sets)
        key = (config.data.name, config.data.path, config.data.split_seed)
        if key not in datasets:
            datasets[key] = run_lib.load_dataset(config)
            classifiers[key] = run_lib.classifier_info(datasets[key])["weights"]  # part of every arm's identity
        dataset = datasets[key]
        fixed = tuple(s.partition("=")[0].strip() for s in sets)
        for point in experiment.sweep_points(fixed, sweeps):
            arm_config = cfg.replace(config, point) if point else config
            arm = Arm(name, point, arm_config, dataset.name,
                      identity.of(arm_config, dataset.fingerprint, backend=backend, device=platform,
                                  classifier=classifiers[key]))
            arm.twin = next((a.label for a in arms if a.digest == arm.digest), "")
            arms.append(arm)
    return arms, datasets


def _is_seed_run(run) -> bool:
    tags = run.data.tags
    return tags.get("kind") not in _NOT_SEED_RUNS and "optuna.study" not in tags and "seed" in tags


def _latest(runs: list, arm: Arm, seed: int, test) -> object | None:
    """The newest run of this arm's identity and seed that passes test(run)."""
    mine = [r for r in runs if _is_seed_run(r) and r.data.tags.get("identity") == arm.digest
            and r.data.tags.get("seed") == str(seed) and test(r)]
    return mine[-1] if mine else None


def _is_outcome(run) -> bool:
    """A result of the variant: it finished, or it diverged (a non-finite loss counts against it)."""
    return run.info.status == "FINISHED" or run.data.tags.get("state") == "diverged"


def _is_resumable(run) -> bool:
    """Its checkpoint continues it: stopped by a signal, ended by an error (not a divergence), or RUNNING
    with no heartbeat for tracking.STALE_AFTER_S (its process died without a word)."""
    state = run.data.tags.get("state")
    return ((run.info.status == "KILLED" and state == "interrupted") or (run.info.status == "FAILED" and state == "error")
            or tracking.is_stale(run))


def _is_alive(run) -> bool:
    """RUNNING with a recent heartbeat: training in another process or on another machine."""
    return run.info.status == "RUNNING" and not tracking.is_stale(run)


def _outcome(client, run, arm: Arm) -> dict:
    metrics = {k[len("final/"):]: v for k, v in run.data.metrics.items() if k.startswith("final/")}
    floor = {k[len("floor/"):]: v for k, v in run.data.metrics.items() if k.startswith("floor/")}
    finished = run.info.status == "FINISHED"
    e = arm.config.eval
    return {"run_id": run.info.run_id, "seed": int(run.data.tags["seed"]),
            "outcome": "finished" if finished else "diverged", "metrics": metrics,
            "reason": run.data.tags.get("failure.reason", ""),
            "collapse": collapse.judge(metrics, floor, e.collapse_modes, e.collapse_recall) if finished else "",
            "fid_history": sorted((h.step, h.value) for h in client.get_metric_history(run.info.run_id, "eval/fid")),
            "collapse_history": _collapse_history(client, run.info.run_id, floor, e),
            "versions": {k: v for k, v in run.data.tags.items() if k.startswith("version.")}}


def _collapse_history(client, run_id: str, floor: dict, e) -> list[tuple[int, bool]]:
    """(step, collapsed) at each evaluation, by the rule the final samples are judged with."""
    if not {"modes", "recall"} <= floor.keys():
        return []
    seen = {m: {h.step: h.value for h in client.get_metric_history(run_id, f"eval/{m}")} for m in ("modes", "recall")}
    steps = sorted(seen["modes"].keys() & seen["recall"].keys())
    return [(s, bool(collapse.judge({m: seen[m][s] for m in seen}, floor, e.collapse_modes, e.collapse_recall)))
            for s in steps]


def collapse_over_training(arms: list[Arm]) -> tuple[list[int], list[tuple[str, list[tuple[int, int]]]]]:
    """Evaluation steps, and per arm (a twin once, under the arm that made its runs) how many seeds
    were collapsed at each step, of those evaluated there: [(collapsed, evaluated), ...]."""
    arms = [a for a in arms if not a.twin]
    steps = sorted({s for a in arms for r in a.runs for s, _ in r.get("collapse_history", [])})
    rows = []
    for arm in arms:
        at = [dict(r.get("collapse_history", [])) for r in arm.runs]
        rows.append((arm.label, [(sum(h[s] for h in at if s in h), sum(s in h for h in at)) for s in steps]))
    return steps, rows


def _last_step(client, run) -> int:
    history = client.get_metric_history(run.info.run_id, "train/d_loss")
    return max((h.step for h in history), default=0)


def fill(arms: list[Arm], datasets: dict, client, retry_diverged: bool = False) -> dict:
    """Train what each arm lacks: resume its interrupted seeds, train seeds without an outcome (and
    diverged ones when retry_diverged), then read every arm's outcomes. Prints the plan with an estimate
    first, and one bar over all of it. Returns {"trained", "resumed", "left_out"}.
    Ctrl-C or SIGTERM checkpoints the run in training, marks it KILLED and stops; the next call resumes it."""
    done = {"trained": 0, "resumed": 0}
    runs_of: dict = {}
    work = []  # (arm, resumable runs {seed: run}, fresh seeds)
    import keras
    elsewhere = (arms[0].identity["backend"], arms[0].identity["platform"]) != (keras.backend.backend(),
                                                                                machine.platform())
    the_plan = plan.Plan("plan: every arm's seeds, reused where their outcome exists" + (
        f"; runs of {arms[0].identity['backend']} on {arms[0].identity['platform']} are made elsewhere "
        "(bench/recipe_gpu.py, harness import-results): nothing is trained here" if elsewhere else ""))
    measured = None
    for arm in arms:
        runs = runs_of.setdefault(arm.experiment, tracking.all_runs(client, arm.experiment))
        c = arm.config
        total = loop.total_steps(c, len(datasets[(c.data.name, c.data.path, c.data.split_seed)].train_images))
        if arm.twin:  # the same computation as an earlier arm: its outcomes, not a second training
            the_plan.rows.append((f"{arm.label} (= {arm.twin})", len(arm.seeds), total, len(arm.seeds), 0, 0))
            continue
        test = (lambda r: r.info.status == "FINISHED") if retry_diverged else _is_outcome
        todo = [s for s in arm.seeds if not _latest(runs, arm, s, test)]
        alive = {s: r for s in todo if (r := _latest(runs, arm, s, lambda r: True)) is not None and _is_alive(r)}
        for seed, run in alive.items():  # never a second copy of a live run
            print(f"{arm.label} seed {seed}: run {run.info.run_id[:8]} is training elsewhere (heartbeat at step "
                  f"{run.data.tags.get('heartbeat.step', '?')}); not started here.", file=sys.stderr)
        todo = [s for s in todo if s not in alive]
        resumable = {s: r for s in todo if (r := _latest(runs, arm, s, _is_resumable)) is not None}
        fresh = [s for s in todo if s not in resumable]
        if elsewhere:
            resumable, fresh, todo = {}, [], []
        work.append((arm, resumable, fresh))
        measured = measured or (c if todo else None)
        evals = loop.evaluations(c, datasets[(c.data.name, c.data.path, c.data.split_seed)])[1]
        cost = models.step_flops(c) / models.step_flops(measured) if measured else 1.0
        the_plan.add(arm.label, len(arm.seeds), total, len(arm.seeds) - len(todo), len(resumable), len(fresh),
                     sum(total - _last_step(client, r) for r in resumable.values()), evals, cost)
    scorers: dict = {}

    def scorer_for(c, dataset):
        key = (dataset.fingerprint, c.eval.n_images, c.eval.kid_subsets, c.eval.kid_subset_size)
        if key not in scorers:
            scorers[key] = run_lib.make_scorer(c, dataset)
        return scorers[key]

    if measured is not None:
        dataset = datasets[(measured.data.name, measured.data.path, measured.data.split_seed)]
        the_plan.step_seconds, the_plan.eval_seconds = plan.measure(measured, dataset, scorer_for(measured, dataset))
        the_plan.note = "; other widths scaled by their FLOPs" if len({models.step_flops(a.config) for a in arms}) > 1 else ""
    print(the_plan.text(), file=sys.stderr)
    bar = the_plan.bar() if the_plan.steps_to_train else None
    stop, previous = loop.install_stop_handlers()
    try:
        for arm, resumable, fresh in work:
            c = arm.config
            dataset = datasets[(c.data.name, c.data.path, c.data.split_seed)]
            scorer = scorer_for(c, dataset)
            common = dict(config=c, dataset=dataset, scorer=scorer, client=client, point=arm.point,
                          extra_tags={"launched_by": "compare"}, stop=stop, progress=bar)
            for seed, run in resumable.items():  # resumed one by one, each exactly its own run
                if _is_alive(client.get_run(run.info.run_id)):  # another process took it up since the plan
                    print(f"{arm.label} seed {seed}: run {run.info.run_id[:8]} is training elsewhere now; "
                          "not started here.", file=sys.stderr)
                    continue
                try:
                    run_lib.run(arm.experiment, seed=seed, resume_run_id=run.info.run_id, **common)
                    done["resumed"] += 1
                except run_lib.ResumeError as e:  # no checkpoint yet, or it cannot continue here
                    print(f"cannot resume {run.info.run_id}: {e} Training seed {seed} afresh.", file=sys.stderr)
                    if run.info.status == "RUNNING":  # a lost process's run: ended, with why
                        tracking.set_tags(client, run.info.run_id, {"state": "error", "failure.reason":
                                          "its process died without a word (no heartbeat); trained afresh"})
                        client.set_terminated(run.info.run_id, "FAILED")
                    fresh.append(seed)
            if run_lib.population_on(c, len(fresh)):  # JAX on a GPU (or true): the fresh seeds as one population
                parent = tracking.start_run(client, arm.experiment, f"{arm.label}-x{len(fresh)}",
                                            {"experiment": arm.experiment, "kind": "group", "launched_by": "compare",
                                             **machine.tags()})
                try:
                    results = run_lib.run_members(arm.experiment, seeds=fresh, parent_id=parent, **common)
                except BaseException:
                    client.set_terminated(parent, "KILLED")
                    raise
                client.set_terminated(parent, "FINISHED" if all(r.status == "FINISHED" for r in results) else "FAILED")
            else:
                for seed in fresh:
                    run_lib.run(arm.experiment, seed=seed, **common)
            done["trained"] += len(fresh)
    except KeyboardInterrupt:
        print("compare stopped: the run in training was checkpointed and marked KILLED; "
              "the same command resumes it.", file=sys.stderr)
        raise
    finally:
        loop.restore_handlers(previous)
        if bar is not None:
            bar.close()
    for experiment in {arm.experiment for arm, resumable, fresh in work if resumable or fresh}:
        runs_of[experiment] = tracking.all_runs(client, experiment)  # with what was just trained
    for arm in arms:
        if arm.twin:
            continue
        for seed in arm.seeds:
            run = _latest(runs_of[arm.experiment], arm, seed, _is_outcome)
            if run is not None:
                arm.runs.append(_outcome(client, run, arm))
    for arm in arms:
        if arm.twin:
            arm.runs = next(a for a in arms if a.label == arm.twin).runs
    done["left_out"] = left_out(arms, runs_of)
    return done


def left_out(arms: list[Arm], runs_of: dict) -> list[tuple[str, str, str, str]]:
    """(experiment, run id, kind, reason) for every run of the compared experiments that the report does
    not use; kind is a short class of reason (for counts), reason says it in full."""
    used = {r["run_id"] for arm in arms for r in arm.runs}
    twins = {a.digest: a.twin for a in arms if a.twin}
    out = []
    for experiment, runs in runs_of.items():
        mine = [a for a in arms if a.experiment == experiment]
        for run in runs:
            if run.info.run_id in used or run.data.tags.get("kind") in _NOT_SEED_RUNS:
                continue
            if run.data.tags.get("identity") in twins:
                out.append((experiment, run.info.run_id, "twin",
                            f"the same run identity as {twins[run.data.tags['identity']]}, whose runs are used"))
                continue
            out.append((experiment, run.info.run_id, *_left_out_reason(run, mine)))
    return out


def _left_out_reason(run, arms: list[Arm]) -> tuple[str, str]:
    tags = run.data.tags
    if "optuna.study" in tags:
        return "search trial", f"a trial of Optuna study {tags['optuna.study']}"
    arm = next((a for a in arms if a.digest == tags.get("identity")), None)
    if arm is None:  # explain against the arm of the same sweep value, if any
        if "identity" not in tags:
            return "identity v1", identity.differences({}, tags, {})[0]
        point = {k[len("sweep."):]: v for k, v in tags.items() if k.startswith("sweep.")}
        near = next((a for a in arms if {k: str(v) for k, v in a.point.items()} == point), arms[0])
        return "other identity", "identity differs: " + "; ".join(identity.differences(near.identity, tags,
                                                                                        run.data.params))
    seed, state = int(tags.get("seed", -1)), tags.get("state", "")
    if seed not in arm.seeds:
        return "seed not requested", f"seed {seed} not requested (seeds {arm.seeds[0]}-{arm.seeds[-1]})"
    if state == "error":
        return "error, trained again", f"error, not an outcome of the variant: {tags.get('failure.reason', '?')[:120]}"
    if state == "diverged":
        return "diverged, trained again", "diverged, trained again (--retry-diverged)"
    if run.info.status == "RUNNING":
        if tracking.is_stale(run):
            return "lost", "RUNNING without a heartbeat: its process died without a word"
        return "running", (f"still RUNNING elsewhere (heartbeat at step {run.data.tags.get('heartbeat.step', '?')}); "
                           "not started twice")
    return "superseded", f"an earlier {state or run.info.status.lower()} run of seed {seed}; the latest outcome is used"


def analyse(arms: list[Arm]) -> list[dict]:
    """One row per arm: outcome counts; mean and t interval per metric over finished seeds; difference
    from base with its Welch interval, Welch p, Holm, verdict; power; diverged and collapsed rates
    against base (Fisher, Holm). An arm with base's very identity (latent at 100) is not tested twice."""
    by_group = {}
    for arm in arms:
        by_group.setdefault(arm.group, []).append(arm)
    rows = []
    for group, members in by_group.items():
        base = next((a for a in members if a.experiment == "base" and not a.point), None)
        tested = [a for a in members if a is not base and not a.twin and base is not None]
        p_raw = {id(a): st.welch_p(a.values("fid"), base.values("fid")) for a in tested}
        p_holm = dict(zip(p_raw, st.holm(list(p_raw.values()))))
        m = max(1, sum(not math.isnan(p) for p in p_raw.values()))
        # The secondary test: a diverged seed counts at the worst final FID of any finished seed here.
        ceiling = max((v for a in members for v in a.values("fid")), default=float("nan"))
        with_ceiling = {id(a): a.values("fid") + [ceiling] * a.count("diverged") for a in members}
        p_ceiling_raw = {id(a): st.welch_p(with_ceiling[id(a)], with_ceiling[id(base)]) for a in tested}
        p_ceiling = dict(zip(p_ceiling_raw, st.holm(list(p_ceiling_raw.values()))))
        rates = {}
        for outcome in ("diverged", "collapsed"):
            n_of = (lambda a: len(a.runs)) if outcome == "diverged" else (lambda a: a.count("finished"))
            raw = {id(a): st.fisher_p(a.count(outcome), n_of(a), base.count(outcome), n_of(base)) for a in tested}
            family = max(1, sum(not math.isnan(p) for p in raw.values()))  # this rate's own Holm family
            rates[outcome] = (raw, dict(zip(raw, st.holm(list(raw.values())))), n_of, family)
        for arm in members:
            row = {"arm": arm.label, "experiment": arm.experiment, "group": group, "n": len(arm.runs),
                   "n_fid": len(arm.values("fid")), "finished": arm.count("finished"),
                   "diverged": arm.count("diverged"), "collapsed": arm.count("collapsed"), "is_base": arm is base,
                   "tests": m, "alpha_power": st.ALPHA / m, "ceiling": ceiling}
            for metric in METRICS:
                row[metric] = st.mean_ci(arm.values(metric), RANGE[metric])
                if arm in tested:
                    row[f"d_{metric}"] = st.diff_ci(arm.values(metric), base.values(metric))
            if arm is base:
                row["verdict"] = "reference"
            elif arm.twin:
                row["verdict"] = f"the same run identity as {arm.twin}: the same runs, not a separate test"
            elif base is None:
                row["verdict"] = (f"not compared: no base arm with the same data, backend, code version and "
                                  f"metric settings (this arm: {group[0]}, {group[2]} on {group[3]}, N={group[7]})")
            else:
                a, b = arm.values("fid"), base.values("fid")
                row["p"], row["p_holm"] = p_raw[id(arm)], p_holm[id(arm)]
                row["p_ceiling"], row["p_ceiling_holm"] = p_ceiling_raw[id(arm)], p_ceiling[id(arm)]
                row["d_fid_ceiling"] = st.diff_ci(with_ceiling[id(arm)], with_ceiling[id(base)])
                row["detectable"] = st.detectable(a, b, st.ALPHA / m)
                row["effect_of_interest"] = EFFECT_OF_INTEREST * float(np.mean(b)) if b else float("nan")
                row["needed"] = st.seeds_needed(row["effect_of_interest"], a, b, st.ALPHA / m)
                row["verdict"] = failed_seeds_rule(st.verdict(row["d_fid"][0], row["p_holm"], len(a), len(b),
                                                              lower_is_better=LOWER_IS_BETTER["fid"]), arm, base)
                for outcome, (raw, adjusted, n_of, family) in rates.items():
                    row[f"{outcome}_p"], row[f"{outcome}_p_holm"] = raw[id(arm)], adjusted[id(arm)]
                    row[f"{outcome}_needs"] = st.smallest_significant_count(n_of(arm), n_of(base), st.ALPHA / family)
                    row[f"{outcome}_family"] = family
            rows.append(row)
    return rows


EFFECT_OF_INTEREST = 0.10  # the FID difference the report sizes seeds for: 10% of base's mean


def failed_seeds_rule(verdict: str, arm: Arm, base: Arm) -> str:
    """The FID verdict is Welch's on the finished seeds; an arm with more failed seeds (diverged plus
    collapsed) than base is never called better, and a verdict on survivors says how many did not."""
    failed, base_failed = arm.count("diverged") + arm.count("collapsed"), base.count("diverged") + base.count("collapsed")
    if verdict == "better" and failed > base_failed:
        return (f"not called better: {failed} of {len(arm.runs)} seeds failed (diverged or collapsed) against "
                f"base's {base_failed} of {len(base.runs)}, though its finished seeds' FID is lower")
    if arm.count("diverged"):
        return f"{verdict}, on its {arm.count('finished')} finished seeds ({arm.count('diverged')} diverged: see the ceiling test)"
    return verdict


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


def markdown(rows: list[dict], arms: list[Arm], settings: str, left: list) -> str:
    e = arms[0].config.eval
    tests = max((r["tests"] for r in rows), default=1)
    lines = ["# Ablation report", "", settings, "",
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
                  "evaluated at that step (a diverged seed counts until it stopped); a seed can collapse and "
                  "recover. A finished seed's last evaluation is its final samples, counted above.", "",
                  "| arm | " + " | ".join(f"step {s}" for s in steps) + " |", "|---|" + "---|" * len(steps)]
        lines += [f"| {label} | " + " | ".join(f"{k} of {n}" if n else "-" for k, n in cells) + " |"
                  for label, cells in over]
    lines += ["", "## Every final metric", "", "Means over the finished seeds with Student t 95% intervals, clipped to "
              "where a metric can lie (precision and recall in [0, 1], modes in [0, 10], IS in [1, 10]); the "
              "real-data floor of each metric is logged with every run (`floor/*`).", "",
              "| arm | IS | KID | modes | precision | recall |", "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['arm']} | {_fmt(r['is'])} | {_fmt(r['kid'])} | {_fmt(r['modes'])} | "
                     f"{_fmt(r['precision'])} | {_fmt(r['recall'])} |")
    groups = {a.group for a in arms}
    if len(groups) > 1:
        lines += ["", "Arms of different data, backend, platform, precision, code version or metric settings were "
                  "not pooled or compared: " + "; ".join(f"{g[0]} ({g[1]}), {g[2]} on {g[3]}, N={g[7]}"
                                                        for g in groups) + "."]
    lines += ["", "Runs used: " + ", ".join(f"{a.label}: " + " ".join(r["run_id"][:8] for r in a.runs) for a in arms)]
    if left:
        lines += ["", f"## Runs left out ({len(left)})", ""]
        by_reason: dict = {}
        for experiment, run_id, _, reason in left:
            by_reason.setdefault((experiment, reason), []).append(run_id[:8])
        lines += [f"- {experiment}: {reason}: {len(ids)} run{'s' * (len(ids) > 1)} ({' '.join(ids)})"
                  for (experiment, reason), ids in sorted(by_reason.items())]
    return "\n".join(lines + [""])


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


def figures(arms: list[Arm], client, out: Path) -> list[Path]:
    import matplotlib.pyplot as plt
    arms = [a for a in arms if not a.twin]  # a twin's runs are drawn once, under the arm that made them
    paths = []
    colors = plt.cm.tab10.colors

    # FID over training: mean line and min-max band over seeds.
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for i, arm in enumerate(arms):
        histories = [dict(r["fid_history"]) for r in arm.runs if r["fid_history"]]
        if not histories:
            continue
        steps = sorted(set.intersection(*[set(h) for h in histories]))
        values = np.array([[h[s] for s in steps] for h in histories])
        ax.plot(steps, values.mean(axis=0), color=colors[i % 10], label=f"{arm.label} (n={len(histories)})")
        ax.fill_between(steps, values.min(axis=0), values.max(axis=0), color=colors[i % 10], alpha=0.15)
    ax.set(xlabel="step", ylabel="classifier-FID", title="FID over training: mean and range over seeds")
    ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    paths.append(_save(fig, out / "fid_over_training.png"))

    # Final FID per arm: every seed a dot, the box its spread.
    fig, ax = plt.subplots(figsize=(max(6, 1.1 * len(arms)), 4.5))
    data = [arm.values("fid") for arm in arms]
    ax.boxplot([d if d else [np.nan] for d in data], showfliers=False)
    ax.set_xticks(range(1, len(arms) + 1), [a.label for a in arms], rotation=30, ha="right", fontsize=8)
    for i, d in enumerate(data, start=1):
        ax.scatter(np.full(len(d), i) + np.linspace(-0.12, 0.12, len(d)), d, s=14, color=colors[i % 10], zorder=3)
    ax.set(ylabel="final classifier-FID (lower is better)", title="final FID per experiment, one dot per seed")
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    paths.append(_save(fig, out / "final_fid.png"))

    # One sample grid per arm (its first seed's last evaluation), side by side.
    fig, axes = plt.subplots(1, len(arms), figsize=(2.4 * len(arms), 2.8), squeeze=False)
    with tempfile.TemporaryDirectory() as tmp:
        for ax, arm in zip(axes[0], arms):
            ax.axis("off")
            ax.set_title(arm.label, fontsize=8)
            if not arm.runs:
                continue
            run_id = arm.runs[0]["run_id"]
            grids = sorted(f.path for f in client.list_artifacts(run_id, "samples"))
            if grids:
                ax.imshow(mpimg.imread(client.download_artifacts(run_id, grids[-1], tmp)))
    fig.tight_layout()
    paths.append(_save(fig, out / "samples.png"))
    return paths


def _save(fig, path: Path) -> Path:
    fig.savefig(path, dpi=110)
    plots.close(fig)
    return path


def settings_line(arms: list[Arm], datasets: dict, done: dict) -> str:
    """Every setting of the comparison in plain words, the identity included."""
    c, i = arms[0].config, arms[0].identity
    n_scored = c.eval.n_images or len(datasets[(c.data.name, c.data.path, c.data.split_seed)].test_images)
    versions = sorted({f"{k[len('version.'):]} {v}" for a in arms for r in a.runs for k, v in r["versions"].items()})
    return (f"Settings: dataset {arms[0].dataset} (fingerprint {i['data']}); "
            f"{c.train.steps or str(c.train.epochs) + ' epochs'}{' steps' if c.train.steps else ''} at batch "
            f"{c.train.batch_size}; widths G {c.model.g_filters} / D {c.model.d_filters}; N = {n_scored} generated "
            f"images scored against the held-out reference; {c.train.seeds} seeds per arm starting at "
            f"{c.train.seed}. Identity: backend {i['backend']} on {i['platform']}, {i['precision']}, numerics "
            f"v{i['numerics']}, metrics v{i['metrics']}. Libraries: {', '.join(versions) or 'unknown'}. "
            f"{done['trained']} runs trained and {done['resumed']} resumed now, the rest reused; "
            f"{len(done['left_out'])} runs of these experiments left out (listed below).")


def compare(names: list[str], smoke: bool, flags: dict, sets: list[str], out: Path | None,
            retry_diverged: bool = False, backend: str | None = None, platform: str | None = None,
            sweeps: dict | None = None) -> tuple[str, Path]:
    """Train what is missing, then write the report; returns (terminal text, report folder)."""
    if not names:
        names = sorted(registry.files())
    client = tracking.client()
    arms, datasets = collect(names, smoke, flags, sets, backend, platform, sweeps)
    done = fill(arms, datasets, client, retry_diverged)
    rows = analyse(arms)
    out = out or Path("reports") / time.strftime("compare-%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    report = markdown(rows, arms, settings_line(arms, datasets, done), done["left_out"])
    (out / "report.md").write_text(report + "\n![FID over training](fid_over_training.png)\n\n"
                                   "![final FID](final_fid.png)\n\n![samples](samples.png)\n")
    paths = figures(arms, client, out)
    run_id = tracking.start_run(client, REPORT_EXPERIMENT, f"compare-{'-'.join(names)}"[:200],
                                {"kind": "report", "experiments": ",".join(names), **machine.tags()})
    for path in [out / "report.md", *paths]:
        client.log_artifact(run_id, str(path))
    tracking.log_params(client, run_id, {"seeds": arms[0].config.train.seeds, "trained": done["trained"],
                                         "resumed": done["resumed"], "left_out": len(done["left_out"]),
                                         "arms": len(arms)})
    client.set_terminated(run_id, "FINISHED")
    text = terminal_table(rows)
    if done["left_out"]:
        kinds: dict = {}
        for _, _, kind, _ in done["left_out"]:
            kinds[kind] = kinds.get(kind, 0) + 1
        text += (f"\n\nleft out {len(done['left_out'])} runs of these experiments, with reasons in the report: "
                 + ", ".join(f"{n} {kind}" for kind, n in sorted(kinds.items())))
    return text, out
