"""Claims: which process trains a seed of a run identity now, so that any number of compares, resumes
and searches sharing one store train each seed once, on one machine or many.

A claim is a row in a table of a database every worker already reaches: the database URL given with
--storage (the PostgreSQL that many-machine searches share), else the tracking store's own database
(sqlite:///mlflow.db on one machine, or a PostgreSQL store). The row's primary key makes taking a claim
atomic in the engine itself (an INSERT that fails for a second taker); no lock files of our own. A holder
refreshes its rows' heartbeat every 30 s from a thread (beat_seconds); a row silent for
tracking.STALE_AFTER_S belongs to a dead worker and is taken over by a compare-and-swap UPDATE, after
which the taker resumes the dead worker's run from its checkpoint.
"""
from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
import uuid
from dataclasses import dataclass

from harness import tracking
from harness.machine import worker_name
from harness.config import UserError

TABLE = "harness_claims"
LOCAL = "sqlite:///harness-claims.db"  # a server store without --storage: claims hold among this folder's processes
POLL_S = 2.0  # how often a waiter asks again for a mutex


def beat_seconds() -> float:
    """How often a holder refreshes its claims: every 30 s, or tracking.HEARTBEAT_S when shorter (tests)."""
    return min(tracking.HEARTBEAT_S, 30.0)


class Busy(UserError):
    """A claim another live process holds."""


class Lost(UserError):
    """A claim another worker took over while this process held it (this one was silent past
    tracking.STALE_AFTER_S: suspended, or cut off from the database): the seed is the other's now."""


@dataclass
class Holder:
    owner: str  # worker:pid:token
    detail: str  # what it is doing, for the message ("base seed 1, run 3f2a...")
    age: float  # seconds since its last heartbeat


def url_for(storage: str | None = None) -> str:
    """Where claims live: the --storage (or HARNESS_STORAGE) database, else the tracking store's database,
    else a SQLite file in this folder (a tracking server without a database: this folder's processes only)."""
    storage = storage or os.environ.get("HARNESS_STORAGE")  # as search and compare read it (study.STORAGE_ENV)
    if storage and "://" in storage:
        return tracking.with_driver(storage)
    uri = tracking.tracking_uri()
    if uri.startswith(("sqlite:", "postgresql", "mysql", "mssql")):
        return tracking.with_driver(uri)
    return LOCAL


_OPEN: dict = {}


def open_claims(storage: str | None = None) -> "Claims":
    """This process's claims in the database url_for(storage) names (one object per database)."""
    url = url_for(storage)
    if url not in _OPEN:
        if url == LOCAL:
            print("claims are kept in ./harness-claims.db (a tracking server and no database URL): only processes "
                  "in this folder see them; set HARNESS_STORAGE or --storage to a postgresql:// URL to share them "
                  "across machines.", file=sys.stderr)
        _OPEN[url] = Claims(url)
    return _OPEN[url]


def seed_key(identity_digest: str, seed: int) -> str:
    return f"seed:{identity_digest}:{seed}"


class Claims:
    """The claims table of one database, as this process (self.owner) holds rows in it."""

    def __init__(self, url: str):
        import sqlalchemy as sa
        self.url = url
        self.owner = f"{worker_name()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        args = {"timeout": 60} if url.startswith("sqlite") else {}
        self._engine = sa.create_engine(url, connect_args=args, pool_pre_ping=True)
        meta = sa.MetaData()
        self._t = sa.Table(TABLE, meta,
                           sa.Column("key", sa.String(200), primary_key=True),
                           sa.Column("owner", sa.String(200), nullable=False),
                           sa.Column("detail", sa.String(500), nullable=False),
                           sa.Column("heartbeat", sa.Float(53), nullable=False))  # seconds since the epoch (a double)
        try:
            meta.create_all(self._engine)
        except sa.exc.SQLAlchemyError:  # another process created it between the check and the CREATE
            if not sa.inspect(self._engine).has_table(TABLE):
                raise
        self._held: dict[str, int] = {}  # key -> nesting depth (a compare's claim, then run's own)
        self._lock = threading.Lock()
        self._beating: threading.Thread | None = None
        self.lost: set[str] = set()  # keys another worker took over while this one held them (it was silent)
        self._confirmed = time.monotonic()  # when this process last found its rows its own

    def check(self, keys: list[str]) -> None:
        """Raise Lost when another worker took over one of these keys: the caller stops training that seed
        at once, writing nothing more to its run. Cheap when the heartbeat thread confirmed the rows lately;
        after a gap (this process was frozen, or the database away) it asks the database itself first."""
        with self._lock:
            gap = time.monotonic() - self._confirmed > 2 * beat_seconds()
        if gap:
            import sqlalchemy as sa
            try:
                self._confirm(keys)
            except sa.exc.SQLAlchemyError:  # the database is away: training goes on, the heartbeat asks again
                pass
        with self._lock:
            taken = [k for k in keys if k in self.lost]
        if taken:
            raise Lost(f"another worker took over {taken[0]} while this process was silent past "
                       f"{tracking.STALE_AFTER_S:.0f} s (claims in {self.where()}); this process stopped training "
                       "it and wrote nothing more to its run, which the other worker continues.")

    def where(self) -> str:
        return tracking.shown(self.url)

    def holder(self, key: str) -> Holder | None:
        """Who holds key now (a stale holder included), or None."""
        import sqlalchemy as sa
        with self._engine.connect() as c:
            row = c.execute(sa.select(self._t).where(self._t.c.key == key)).first()
        return None if row is None else Holder(row.owner, row.detail, time.time() - row.heartbeat)

    def held_elsewhere(self, key: str) -> Holder | None:
        """A live holder of key other than this process, or None (free, stale, or mine)."""
        h = self.holder(key)
        return h if h is not None and h.owner != self.owner and h.age <= tracking.STALE_AFTER_S else None

    def take(self, key: str, detail: str = "") -> bool:
        """Claim key: True when this process holds it now (nested takes count), False when a live process
        does. A stale holder's claim is taken over."""
        import sqlalchemy as sa
        with self._lock:
            if key in self._held:
                self._held[key] += 1
                return True
        for _ in range(5):  # a release between our INSERT and SELECT: try again
            now = time.time()
            try:
                with self._engine.begin() as c:
                    c.execute(sa.insert(self._t).values(key=key, owner=self.owner, detail=detail[:500], heartbeat=now))
                break
            except sa.exc.IntegrityError:
                pass
            with self._engine.begin() as c:
                row = c.execute(sa.select(self._t).where(self._t.c.key == key)).first()
                if row is None:
                    continue
                if now - row.heartbeat <= tracking.STALE_AFTER_S and row.owner != self.owner:
                    return False
                taken = c.execute(sa.update(self._t).where(
                    (self._t.c.key == key) & (self._t.c.owner == row.owner) & (self._t.c.heartbeat == row.heartbeat)
                ).values(owner=self.owner, detail=detail[:500], heartbeat=now)).rowcount
            if taken == 1:
                break
        else:
            return False
        with self._lock:
            self._held[key] = 1
            self.lost.discard(key)
            self._confirmed = time.monotonic()
            if self._beating is None:
                self._beating = threading.Thread(target=self._beat, name="claims-heartbeat", daemon=True)
                self._beating.start()
        return True

    def release(self, key: str) -> None:
        import sqlalchemy as sa
        with self._lock:
            if key not in self._held:
                return
            self._held[key] -= 1
            if self._held[key] > 0:
                return
            del self._held[key]
        with self._engine.begin() as c:
            c.execute(sa.delete(self._t).where((self._t.c.key == key) & (self._t.c.owner == self.owner)))

    @contextlib.contextmanager
    def hold(self, keys: list[str], detail: str = ""):
        """Hold every key for the block, or raise Busy (holding none) when a live process holds one."""
        taken = []
        try:
            for key in keys:
                if not self.take(key, detail):
                    h = self.holder(key)
                    raise Busy(f"{detail or key} is being trained by {h.owner.rsplit(':', 1)[0] if h else 'another process'}"
                               f" (heartbeat {h.age if h else 0:.0f} s ago, claims in {self.where()}); "
                               "wait for it, or choose another seed.")
                taken.append(key)
            yield
        finally:
            for key in taken:
                self.release(key)

    @contextlib.contextmanager
    def mutex(self, key: str, detail: str = ""):
        """Hold key for the block, waiting while another live process holds it (a design being written)."""
        said = False
        while not self.take(key, detail):
            if not said:
                print(f"waiting for another process: {detail or key}", file=sys.stderr)
                said = True
            time.sleep(POLL_S)
        try:
            yield
        finally:
            self.release(key)

    def _beat(self) -> None:
        """Refresh this process's rows every beat_seconds() while it holds any; say so when one was taken
        over (this process was silent past STALE_AFTER_S: suspended, or both stores unreachable)."""
        import sqlalchemy as sa
        while True:
            time.sleep(beat_seconds())
            with self._lock:
                keys = list(self._held)
                if not keys:  # decided under the lock: a take() after this starts a new thread
                    self._beating = None
                    return
            try:
                with self._engine.begin() as c:
                    c.execute(sa.update(self._t).where((self._t.c.owner == self.owner) & self._t.c.key.in_(keys))
                              .values(heartbeat=time.time()))
                self._confirm(keys)
            except sa.exc.SQLAlchemyError as e:  # an outage: the next beat tries again; the row may go stale
                print(f"claims heartbeat failed ({tracking.masked(str(e).splitlines()[0])}); trying again",
                      file=sys.stderr)

    def _confirm(self, keys: list[str]) -> None:
        """Which of keys are still this process's rows: the others go to self.lost, said once."""
        import sqlalchemy as sa
        with self._engine.connect() as c:
            mine = {r.key for r in c.execute(sa.select(self._t.c.key).where(
                (self._t.c.owner == self.owner) & self._t.c.key.in_(keys)))}
        with self._lock:
            self._confirmed = time.monotonic()
            for key in set(keys) - mine:
                if key in self._held and key not in self.lost:
                    self.lost.add(key)
                    print(f"claim {key} was taken over by another worker (this one was silent past "
                          f"{tracking.STALE_AFTER_S:.0f} s)", file=sys.stderr)


class TrialClaim:
    """A search trial's claim is Optuna's own: its RDB storage hands a WAITING trial to one worker, and a
    worker that stops heartbeating has its trial failed and asked again (harness/study.py), so a trial
    takes no seed claim of ours (one would outlive the dead worker by STALE_AFTER_S and block the retry)."""

    @contextlib.contextmanager
    def hold(self, keys: list[str], detail: str = ""):
        yield

    def check(self, keys: list[str]) -> None:
        """Optuna fails a silent worker's trial and asks it again: nothing of ours to lose."""
