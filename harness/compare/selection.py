"""The arms a compare names: experiments (base first) at their sweep values, and studies' best trials, each
with the data it trains on and the classifier that scores it (both part of its run identity), loaded
once per dataset. Nothing is trained here but, on a store's first use, its metric classifier."""
from __future__ import annotations

from harness import config as cfg
from harness import data, identity, registry, scorers
from harness.compare.arms import Arm, data_key
from harness.tracking import Store


def collect(names: list[str], smoke: bool, flags: dict, sets: list[str], backend: str | None = None,
            platform: str | None = None, sweeps: dict | None = None, storage: str | None = None
            ) -> tuple[list[Arm], dict]:
    """Arms for the named experiments (base first) and studies' best trials (study:EXPERIMENT/NAME, from
    the Optuna storage), with the datasets they use; backend and platform: of runs made elsewhere (an
    accelerator's, imported), instead of this machine's; sweeps: key -> the values of that sweep to
    compare (default: all of them)."""
    from harness.compare import confirm
    names = list(dict.fromkeys(["base", *names]))
    studies = [n for n in names if confirm.is_study(n)]
    names = [n for n in names if not confirm.is_study(n)]
    unswept = [k for k in (sweeps or {}) if not any(k in registry.load(n).sweep for n in names)]
    if unswept:
        raise cfg.ConfigError(f"--sweep {unswept[0]}: no experiment compared here sweeps it "
                              f"(named: {', '.join(names)}).")
    datasets: dict = {}
    classifiers: dict = {}
    arms = []
    for name in names:
        experiment, config = registry.resolve(name, smoke, flags, sets)
        key = data_key(config)
        if key not in datasets:
            datasets[key] = data.for_config(config)
            classifiers[key] = scorers.classifier_info(datasets[key])["weights"]  # part of every arm's identity
        dataset = datasets[key]
        fixed = tuple(s.partition("=")[0].strip() for s in sets)
        for sweep_value in experiment.sweep_values(fixed, sweeps):
            arm_config = cfg.replace(config, sweep_value) if sweep_value else config
            arm = Arm(name, sweep_value, arm_config, dataset.name,
                      identity.of(arm_config, dataset.fingerprint, backend=backend, device=platform,
                                  classifier=classifiers[key]))
            arm.same_as = next((a.label for a in arms if a.digest == arm.digest), "")
            arms.append(arm)
    if studies:
        store = Store()
    for name in studies:  # each study's best, retrained on fresh seeds at the study's own settings
        experiment, best = confirm.best_trial(name, storage)
        config = confirm.confirmed_config(store, experiment, best, smoke, flags, sets)
        key = data_key(config)
        if key not in datasets:
            datasets[key] = data.for_config(config)
            classifiers[key] = scorers.classifier_info(datasets[key])["weights"]
        arms.append(Arm(experiment, {}, config, datasets[key].name,
                        identity.of(config, datasets[key].fingerprint, backend=backend, device=platform,
                                    classifier=classifiers[key]),
                        title=name, tags={"confirms": best["study"], "confirms.trial": best["trial"]}, best=best))
    return arms, datasets
