"""`transcribed run` (the daemon) and `transcribed once` (drain what is pending, then exit).

Wires the house: ledger (opened by cli/startup.py), Gladia client, pool of workers and the servers beside it
(built by cli/wiring.py), inbox watcher, sd_notify, signals, reload and the watching of the key's sources.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import secrets
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from transcribed import config, logs
from transcribed.cli import emulator, shell, startup, wiring
from transcribed.config import Config
from transcribed.errors import ConfigError
from transcribed.inbox.scan import scan
from transcribed.ledger import Ledger, LedgerError
from transcribed.notify import Notifier
from transcribed.pipeline import settled

if TYPE_CHECKING:  # the machinery is imported once there is work: `once` over a finished inbox never needs it
    from transcribed.gladia.client import GladiaClient
    from transcribed.gladia.retry import CircuitBreaker, RouteGate
    from transcribed.inbox.readiness import ReadyFile
    from transcribed.inbox.watcher import Watcher
    from transcribed.pipeline.pool import Pool
    from transcribed.receiver import CallbackHub
    from transcribed.receiver.metrics import Metrics

Found = tuple[list["ReadyFile"], list[Path]]    # `once`'s start: (ready, settling)

log = structlog.get_logger("transcribed.daemon")
DRAIN_SECONDS = 10.0

NO_KEY_HELP = """\
transcribed: no Gladia API key is configured{where}.
  Try it now with the built-in emulator (emulated transcripts, no key needed):
      transcribed run --emulator
  then drop audio or video files into ./inbox and watch transcripts appear beside them.
  To use Gladia for real, get a key at https://app.gladia.io and either:
      export GLADIA_API_KEY=...            # then: transcribed run --config PATH
      transcribed config init PATH --inbox ~/Transcribe   # a starter config; set gladia.api_key_file
"""


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    """Add `run` and `once`."""
    for name, help_text in (("run", "run the daemon: watch the inboxes and transcribe what arrives"),
                            ("once", "transcribe what is pending now (inboxes and unfinished work), then exit")):
        parser = commands.add_parser(name, parents=[common], help=help_text, description=help_text[0].upper()
                                     + help_text[1:] + ". Exit 0 when nothing failed, 1 otherwise, 78 on a bad "
                                     "config.")
        parser.add_argument("--emulator", action="store_true",
                            help="use a built-in Gladia emulator (emulated transcripts, no key); without a config "
                                 "file the inbox is ./inbox and the ledger ./.transcribed/")
        parser.add_argument("--rebuild-ledger", action="store_true",
                            help="after the ledger was found damaged: start a new one, keeping what could be read, "
                                 "and adopt files whose outputs are already on disk")
        parser.set_defaults(handler=cmd_run if name == "run" else cmd_once)


def cmd_run(args: argparse.Namespace) -> int:
    return _main(args, once=False)


def cmd_once(args: argparse.Namespace) -> int:
    return _main(args, once=True)


def _main(args: argparse.Namespace, *, once: bool) -> int:
    environ = dict(os.environ)
    try:
        loaded = shell.load_config(args, environ)
    except ConfigError:
        raise
    if loaded.gladia.api_key is None and not args.emulator:
        where = "" if loaded.source else " and no config file was found"
        sys.stderr.write(NO_KEY_HELP.format(where=where))
        return config.EX_CONFIG
    with emulator.emulated(loaded, args.emulator) as loaded:
        redactor = shell.setup_logging(loaded)
        daemon = Daemon(loaded, args, environ, redactor)
        return daemon.main(once=once)


class Daemon:
    """One running transcribed: owns the ledger, client, pool, watcher and the main loop."""

    def __init__(self, loaded: Config, args: argparse.Namespace, environ: Mapping[str, str],
                 redactor: logs.Redactor) -> None:
        self.config = loaded
        self.args = args
        self.environ = environ
        self.redactor = redactor
        self.stop = threading.Event()
        self.reload_requested = threading.Event()
        self.notifier = Notifier.from_env(environ)
        self.crash_at = environ.get("TRANSCRIBED_CRASH_AT") or None
        self.budget_clock, self.fake_clock = shell.budget_clock(environ)
        self.metrics: Metrics | None = None
        hang = environ.get("TRANSCRIBED_TEST_HANG_MAIN_LOOP_AFTER")
        self.hang_at = time.monotonic() + float(hang) if hang else None

    def main(self, *, once: bool) -> int:
        shell.install_stop_signals(self.stop, on_second=self._hard_stop, on_first=self._on_first_signal)
        if not once:
            import signal

            signal.signal(signal.SIGHUP, lambda signum, frame: self.reload_requested.set())
        try:
            lock = startup.lock(self.config.ledger.path)
        except BlockingIOError:
            print(f"transcribed: another transcribed is already running with the ledger {self.config.ledger.path}",
                  file=sys.stderr)
            return shell.EX_FAILED
        with lock:
            return startup.with_ledger(self.config, rebuild=bool(self.args.rebuild_ledger),
                                       read=functools.partial(self._read, once=once),
                                       serve=functools.partial(self._go, once=once))

    def _read(self, ledger: Ledger, *, once: bool) -> tuple[settled.Known, bool, Found | None]:
        """Before any write (see settled.py): the settled set, whether it was built, and `once`'s scan."""
        known, built = settled.load(ledger, self.config)
        return known, built, self._scan_once(ledger, known) if once else None

    def _go(self, ledger: Ledger, start: tuple[settled.Known, bool, Found | None], *, once: bool) -> int:
        known, built, found = start
        try:
            if once and found is None:
                if built:
                    settled.save(ledger, known)
                self.notifier.ready()
                log.info("once_finished", files=0, done=0, failed=0, known=settled.count(known))
                return shell.EX_OK
            code = self._serve(ledger, once=once, known=known, found=found)
            self._save_settled(ledger)
            return code
        finally:
            self.notifier.stopping()

    def _save_settled(self, ledger: Ledger) -> None:
        """Keep the settled set for the next start (a second or so per 100,000 files, after the drain),
        unless the one read at start is still there (nothing was written since)."""
        try:
            if not ledger.has_settled_blob():
                settled.save(ledger, settled.build(ledger, self.config))
        except LedgerError as exc:
            log.warning("settled_set_not_saved", error=str(exc), effect="the next start reads the ledger's rows")

    def _scan_once(self, ledger: Ledger, known: settled.Known) -> Found | None:
        """`once`'s start (reads only): scan the inboxes past what `known` holds (a stat per file: a file
        rewritten in place while nothing watched keeps its name and inode). Return (ready, settling), or None
        when there is nothing to do at all, so a finished inbox needs none of the machinery."""
        settle_ns = int(self.config.inbox.settle_seconds * 1e9)
        ready, settling = scan(self.config.inbox, settled_before_ns=time.time_ns() - settle_ns, known=known)
        if ready or settling or ledger.pending(time.time()):
            return ready, settling
        return None

    def _client(self, loaded: Config, breaker: CircuitBreaker | None = None,
                gate: RouteGate | None = None) -> GladiaClient:
        return wiring.gladia_client(loaded, self.stop, self.metrics, breaker, gate)

    def _serve(self, ledger: Ledger, *, once: bool, known: settled.Known, found: Found | None) -> int:
        secret = ledger.get_meta("callback_secret")
        if secret is None:
            secret = secrets.token_hex(32)
            ledger.set_meta("callback_secret", secret)
        with contextlib.ExitStack() as stack:
            if self.config.metrics.listen:
                from transcribed.receiver.metrics import Metrics

                self.metrics = Metrics()    # the client and the workers count into it from the start
            hub = wiring.start_callbacks(stack, self.config.callback, ledger, bytes.fromhex(secret))
            return self._serve_with(ledger, once=once, hub=hub, secret=bytes.fromhex(secret), known=known,
                                    found=found, stack=stack)

    def _serve_with(self, ledger: Ledger, *, once: bool, hub: CallbackHub | None, secret: bytes,
                    known: settled.Known, found: Found | None, stack: contextlib.ExitStack) -> int:
        from transcribed.pipeline.budget import HOLD_KIND, Budget
        from transcribed.pipeline.pool import Pool

        spent, released = ledger.reconcile_spending()
        if spent or released:
            log.info("budget_reconciled", spent=spent, released=released)
        budget = Budget(self.config.budget, self.budget_clock)
        ctx = wiring.job_context(self.config, ledger, stop=self.stop, environ=self.environ, crash_at=self.crash_at,
                                 hub=hub, secret=secret, metrics=self.metrics, budget=budget)
        ledger.set_meta("daemon_pid", str(os.getpid()))
        ledger.set_meta("daemon_started", str(time.time()))
        if ledger.lift_holds(HOLD_KIND):     # measured again against the budget in force now
            log.info("budget_holds_lifted", why="start")
        pool = Pool(ctx)
        if self.fake_clock:
            pool.budget_tick = 0.5     # the test hook's clock can jump: look at it often
        if self.metrics is not None and not wiring.start_metrics(stack, self.config, self.metrics, ledger, pool,
                                                                 budget):
            ctx.client.close()
            return config.EX_CONFIG
        pool.start()
        integrations = None
        if not once and self.config.integrations.enabled:
            integrations = wiring.start_integrations(self.config, ctx, pool)
            if integrations is None:
                self.stop.set()
                pool.join(DRAIN_SECONDS)
                ctx.client.close()
                return config.EX_CONFIG
        log.info("daemon_started", mode="once" if once else "run", inboxes=[str(p) for p in self.config.inbox.paths],
                 concurrency=self.config.workers.concurrency, base_url=self.config.gladia.base_url)
        try:
            if found is not None:
                return self._once(pool, *found, known)
            return self._run(pool, known)
        finally:
            self.stop.set()
            if integrations is not None:
                integrations.stop()
            finished = pool.join(DRAIN_SECONDS)
            ctx.client.close()
            log.info("daemon_stopped", drained=finished)

    def _run(self, pool: Pool, known: settled.Known) -> int:
        from transcribed.inbox.watcher import Watcher

        pool.enqueue_pending()
        seeded = {folder: dict(names) for folder, names in known.items()}    # the watcher's own, mutable
        watcher = Watcher(self.config.inbox, pool.submit, known=seeded,
                          on_problem=lambda path, reason: log.warning("inbox_problem", file=str(path), reason=reason))
        watcher.start()
        self.notifier.ready()
        interval = self.notifier.watchdog_interval
        tick = min(1.0, interval / 2) if interval else 1.0
        last_status = ""
        sources = self._key_sources()
        try:
            while not self.stop.wait(tick):
                if self.hang_at is not None and time.monotonic() >= self.hang_at:
                    self.stop.wait()          # test-only: a hung main loop sends no more WATCHDOG=1
                    break
                self.notifier.watchdog_ping()
                now_sources = self._key_sources()
                if now_sources != sources and pool.paused:
                    log.info("api_key_source_changed", action="reloading the config, then checking the key")
                    self.reload_requested.set()
                sources = now_sources
                if self.reload_requested.is_set():
                    self.reload_requested.clear()
                    self._reload(pool, watcher)
                status = _status_line(pool)
                if status != last_status:
                    self.notifier.status(status)
                    last_status = status
        finally:
            log.info("loop_ended", loop="main", reason="stop requested")
            self.notifier.stopping()
            watcher.stop()
        return shell.EX_OK

    def _once(self, pool: Pool, ready: list[ReadyFile], settling: list[Path], known: settled.Known) -> int:
        from transcribed.pipeline.context import Outcome
        from transcribed.pipeline.pool import wait_all

        settle_ns = int(self.config.inbox.settle_seconds * 1e9)
        keys = set(pool.enqueue_pending())
        for item in sorted(ready, key=lambda r: r.mtime_ns):
            key = pool.identify(item)
            if key is not None:
                keys.add(key)
        deadline = time.monotonic() + self.config.inbox.settle_timeout_seconds
        while settling and not self.stop.is_set() and time.monotonic() < deadline:
            self.stop.wait(max(0.2, self.config.inbox.settle_seconds / 2))
            ready, settling = scan(self.config.inbox, settled_before_ns=time.time_ns() - settle_ns, known=known,
                                   report_passed_over=False)     # said once, by the first scan
            for item in ready:
                key = pool.identify(item)
                if key is not None:
                    keys.add(key)
        self.notifier.ready()
        wait_all(pool, keys, self.stop)
        if self.stop.is_set():
            return shell.EX_TEMPFAIL
        snapshot = pool.snapshot()
        failed = sum(1 for key in keys if pool.outcome_of(key) in (Outcome.FAILED, Outcome.RETRY_LATER,
                                                                   Outcome.PAUSED, Outcome.HELD))
        failed += pool.held_unread   # held back by invalid folder settings (logged: folder_settings_invalid)
        log.info("once_finished", files=len(keys), done=snapshot.done_this_run, failed=failed,
                 waiting_for_budget=snapshot.waiting)
        return shell.EX_FAILED if failed else shell.EX_OK

    def _reload(self, pool: Pool, watcher: Watcher) -> None:
        self.notifier.reloading()
        try:
            fresh = shell.load_config(self.args, self.environ)
        except ConfigError as exc:
            log.error("reload_refused", problems=exc.problems, action="the running config stays")
            self.notifier.ready_after_reload()
            return
        if fresh.gladia.api_key is None:
            log.error("reload_refused", problems=["no API key"], action="the running config stays")
            self.notifier.ready_after_reload()
            return
        self.redactor.update([fresh.gladia.api_key.reveal(), *self.redactor.secrets])
        if fresh.inbox != self.config.inbox or fresh.ledger != self.config.ledger \
                or fresh.integrations != self.config.integrations:
            log.warning("reload_partial", detail="[inbox], [ledger] and [integrations] changes take effect at the "
                                                 "next restart")
        old = pool.ctx.client
        pool.ctx.client = self._client(fresh, breaker=old.breaker, gate=old.gate)
        pool.ctx.config = replace(fresh, inbox=self.config.inbox, ledger=self.config.ledger,
                                  integrations=self.config.integrations)
        self.config = pool.ctx.config
        if pool.ctx.budget is not None and pool.ctx.budget.limits != fresh.budget:
            pool.ctx.budget.limits = fresh.budget
            pool.lift_budget_holds("the budget changed")
        if pool.ctx.folders is not None:
            pool.ctx.folders.reconfigure(self.config)
        log.info("config_reloaded", source=str(fresh.source) if fresh.source else None)
        pool.key_changed()     # while paused over a refused key: check the (maybe new) key at once
        self.notifier.ready_after_reload()

    def _key_sources(self) -> tuple[tuple[int, int, int, int] | None, ...]:
        """What the key is read from, as a cheap stat each (the systemd credential, gladia.api_key_file, the
        config file): a change while paused over a refused key reloads the config and checks the key."""
        paths = [self.config.gladia.api_key_file, self.config.source]
        if self.environ.get("CREDENTIALS_DIRECTORY"):
            paths.append(Path(self.environ["CREDENTIALS_DIRECTORY"]) / config.CREDENTIAL_NAME)
        return tuple(_identity(path) for path in paths)

    def _on_first_signal(self, name: str) -> None:
        log.info("stop_requested", signal=name, drain_seconds=DRAIN_SECONDS,
                 hint="send it again to stop at once (still resumable)")
        self.notifier.stopping()

    def _hard_stop(self) -> None:
        log.warning("stopping_now", reason="second signal")
        os._exit(shell.EX_TEMPFAIL)


def _identity(path: Path | None) -> tuple[int, int, int, int] | None:
    if path is None:
        return None
    try:
        info = path.stat()
    except OSError:
        return None
    return info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns


def _status_line(pool: Pool) -> str:
    snap = pool.snapshot()
    parts = [f"{snap.in_flight} in flight", f"{snap.queued} queued", f"{snap.done_today} done today"]
    if snap.failed_this_run:
        parts.append(f"{snap.failed_this_run} failed")
    if snap.waiting:
        parts.append(f"{snap.waiting} waiting for the audio budget")
    held = len(pool.held)
    if held:
        parts.append(f"{held} waiting for valid folder settings")
    if snap.paused:
        parts.append(snap.paused)
    elif snap.api_down:
        parts.append("Gladia unreachable, probing every minute")
    if snap.last_error:
        parts.append(f"last error: {snap.last_error[:120]}")
    return ", ".join(parts)
