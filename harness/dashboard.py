"""Optuna Dashboard over exactly the storage `harness search` uses (harness/study.py storage_for: the journal file
by default, or an RDB URL), for `harness dashboard`. The optuna-dashboard package is an optional extra.

python -m harness.dashboard HOST PORT: the server process that harness/server.py starts and stops; the
storage comes in HARNESS_STORAGE (by environment: a password in its URL never shows in `ps`).
"""
from __future__ import annotations

import sys

from harness.config import UserError


def study_url(storage_url: str | None, study: str | None, host: str, port: int) -> str:
    """The page to open: the study's own, or the list of studies; an unknown study is an error."""
    import optuna
    from harness import study as study_lib
    base = f"http://{host}:{port}/dashboard"
    if not study:
        return base
    summaries = optuna.get_all_study_summaries(study_lib.storage_for(storage_url))
    found = {s.study_name: s._study_id for s in summaries}
    if study not in found:
        known = ", ".join(sorted(found)) or "none yet"
        from harness.tracking import shown
        raise UserError(f"no study '{study}' in {shown(storage_url or str(study_lib.DEFAULT_JOURNAL))}; studies there: {known} "
                        "(names are EXPERIMENT/STUDY, as `harness search` prints them).")
    return f"{base}/studies/{found[study]}"


def main(host: str, port: int) -> None:
    import os
    try:
        import optuna_dashboard
    except ImportError:
        raise SystemExit("optuna-dashboard is not installed: pip install -e \".[dashboard]\"") from None
    from harness import study as study_lib
    optuna_dashboard.run_server(study_lib.storage_for(os.environ.get(study_lib.STORAGE_ENV) or None), host=host, port=port)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
