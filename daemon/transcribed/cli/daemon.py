"""`transcribed run` (the daemon) and `transcribed once` (drain what is pending, then exit).

Wires the house: ledger, Gladia client, pool of workers, inbox watcher, sd_notify, signals and reload.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import os
import random
import secrets
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import replace
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import structlog

from transcribed import config, logs
from transcribed.cli import shell
from transcribed.config import Config, Secret
from transcribed.errors import ConfigError
from transcribed.inbox.scan import scan
from transcribed.ledger import Ledger, LedgerDamagedError, LedgerError
from transcribed.ledger import repair as ledger_repair
from transcribed.notify import Notifier
from transcribed.pipeline import settled

if TYPE_CHECKING:  # the machinery is imported once there is work: `once` over a finished inbox never needs it
    from transcribed.gladia.client import GladiaClient
    from transcribed.gladia.retry import CircuitBreaker
    from transcribed.inbox.readiness import ReadyFile
    from transcribed.inbox.watcher import Watcher
    from transcribed.pipeline.pool import Pool
    from transcribed.receiver import CallbackHub
    from transcribed.receiver.metrics import Metrics

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
    with _emulated(loaded, args.emulator) as loaded:
        redactor = shell.setup_logging(loaded)
        daemon = Daemon(loaded, args, environ, redactor)
        return daemon.main(once=once)


@contextlib.contextmanager
def _emulated(loaded: Config, wanted: bool) -> Iterator[Config]:
    if not wanted:
        yield loaded
        return
    from transcribed import emulator

    if loaded.source is None:
        here = Path.cwd()
        loaded = replace(loaded, inbox=replace(loaded.inbox, paths=(here / "inbox",)),
                         ledger=replace(loaded.ledger, path=here / ".transcribed" / "ledger.sqlite3"))
        for path in loaded.inbox.paths:
            path.mkdir(parents=True, exist_ok=True)
    key = "emulator-" + uuid.uuid4().hex
    settings = emulator.EmulatorSettings(api_keys=frozenset({key}), processing_seconds=1.0)
    with emulator.Emulator(settings) as running:
        print(f"transcribed: using the built-in Gladia emulator at {running.base_url} (transcripts are emulated); "
              f"inbox: {', '.join(str(p) for p in loaded.inbox.paths)}", file=sys.stderr)
        yield replace(loaded, gladia=replace(loaded.gladia, base_url=running.base_url, api_key=Secret(key)))


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
            lock = _lock(self.config.ledger.path)
        except BlockingIOError:
            print(f"transcribed: another transcribed is already running with the ledger {self.config.ledger.path}",
                  file=sys.stderr)
            return shell.EX_FAILED
        rebuild = bool(self.args.rebuild_ledger)
        path = self.config.ledger.path
        with lock:
            # The ledger's pages are checked (PRAGMA quick_check, beside the start-up scan, passed before the
            # first write) unless the file is exactly as the last clean stop left it.
            clean = ledger_repair.left_clean(path)
            for checked in (rebuild, True):
                ledger = self._open(check_pages=checked)
                if isinstance(ledger, int):
                    return ledger
                pages = None if checked or clean else ledger_repair.check_pages_aside(path)
                with contextlib.closing(ledger):
                    try:
                        known, built = settled.load(ledger, self.config)   # before any write: see settled.py
                        found = self._scan_once(ledger, known) if once else None
                    except LedgerDamagedError as exc:
                        if checked:
                            return self._damaged(exc)
                        if pages is not None:
                            pages()
                        clean = False
                        continue   # a damaged page was read: open again with the check, as below
                    if pages is None or pages() is None:
                        try:
                            code = self._go(ledger, once=once, known=known, built=built, found=found)
                        finally:
                            self.notifier.stopping()
                        ledger.close()
                        ledger_repair.note_clean(path)
                        return code
                # damaged: open again with the check, which moves the file aside and says so
        return config.EX_CONFIG

    def _open(self, *, check_pages: bool) -> Ledger | int:
        """The ledger, or the exit code after saying why it cannot be used."""
        try:
            return self._open_ledger(check_pages=check_pages)
        except LedgerDamagedError as exc:
            return self._damaged(exc)
        except LedgerError as exc:
            print(f"transcribed: cannot open the ledger: {exc}", file=sys.stderr)
            return config.EX_CONFIG

    def _damaged(self, exc: LedgerDamagedError) -> int:
        log.critical("ledger_damaged", aside=str(exc.aside_path) if exc.aside_path else None, problem=str(exc))
        where = "has been moved aside" if exc.aside_path else "cannot be read"
        print(f"transcribed: the ledger was damaged and {where} ({exc}). Nothing will be re-transcribed "
              "silently: run `transcribed run --rebuild-ledger` to start a new ledger that keeps what could be "
              "read and adopts outputs already on disk.", file=sys.stderr)
        return config.EX_CONFIG

    def _go(self, ledger: Ledger, *, once: bool, known: settled.Known, built: bool,
            found: tuple[list[ReadyFile], list[Path]] | None) -> int:
        if once and found is None:
            if built:
                settled.save(ledger, known)
            self.notifier.ready()
            log.info("once_finished", files=0, done=0, failed=0, known=settled.count(known))
            return shell.EX_OK
        code = self._serve(ledger, once=once, known=known, found=found)
        self._save_settled(ledger)
        return code

    def _save_settled(self, ledger: Ledger) -> None:
        """Keep the settled set for the next start (a second or so per 100,000 files, after the drain),
        unless the one read at start is still there (nothing was written since)."""
        try:
            if not ledger.has_settled_blob():
                settled.save(ledger, settled.build(ledger, self.config))
        except LedgerError as exc:
            log.warning("settled_set_not_saved", error=str(exc), effect="the next start reads the ledger's rows")

    def _scan_once(self, ledger: Ledger, known: settled.Known) -> tuple[list[ReadyFile], list[Path]] | None:
        """`once`'s start (reads only): scan the inboxes past what `known` holds (a stat per file: a file
        rewritten in place while nothing watched keeps its name and inode). Return (ready, settling), or None
        when there is nothing to do at all, so a finished inbox needs none of the machinery."""
        settle_ns = int(self.config.inbox.settle_seconds * 1e9)
        ready, settling = scan(self.config.inbox, settled_before_ns=time.time_ns() - settle_ns, known=known)
        if ready or settling or ledger.pending(time.time()):
            return ready, settling
        return None

    def _open_ledger(self, *, check_pages: bool) -> Ledger:
        ledger = Ledger.open(self.config.ledger.path, rebuild=bool(self.args.rebuild_ledger), check_pages=check_pages)
        if self.args.rebuild_ledger:
            from transcribed.pipeline.adopt import adopt

            files, _ = scan(self.config.inbox, settled_before_ns=None, report_passed_over=False)
            adopted = adopt(ledger, self.config, files)
            log.warning("ledger_rebuild_adopted", files=adopted, hint="files with outputs on disk are done")
        if ledger.recovery is not None:
            log.warning("ledger_rebuilt", aside=str(ledger.recovery.aside_path),
                        salvaged=str(ledger.recovery.salvaged))
        return ledger

    def _client(self, loaded: Config, breaker: CircuitBreaker | None = None) -> GladiaClient:
        from transcribed.gladia.client import GladiaClient
        from transcribed.gladia.retry import RetryPolicy

        gladia = loaded.gladia
        assert gladia.api_key is not None
        return GladiaClient(gladia.base_url, gladia.api_key.reveal(), request_timeout=gladia.request_timeout_seconds,
                            upload_timeout=gladia.upload_timeout_seconds, stop=self.stop, breaker=breaker,
                            policy=RetryPolicy(max_attempts=gladia.max_attempts,
                                               deadline=gladia.retry_deadline_seconds),
                            observer=self.metrics.observe_api if self.metrics is not None else None)

    def _serve(self, ledger: Ledger, *, once: bool, known: settled.Known,
               found: tuple[list[ReadyFile], list[Path]] | None) -> int:
        secret = ledger.get_meta("callback_secret")
        if secret is None:
            secret = secrets.token_hex(32)
            ledger.set_meta("callback_secret", secret)
        with contextlib.ExitStack() as stack:
            if self.config.metrics.listen:
                from transcribed.receiver.metrics import Metrics

                self.metrics = Metrics()    # the client and the workers count into it from the start
            hub = self._callbacks(stack, ledger, bytes.fromhex(secret))
            return self._serve_with(ledger, once=once, hub=hub, secret=bytes.fromhex(secret), known=known,
                                    found=found, stack=stack)

    def _callbacks(self, stack: contextlib.ExitStack, ledger: Ledger, secret: bytes) -> CallbackHub | None:
        """Start the callback receiver when [callback] is enabled; return its hub (None: polling only).

        Jobs still in flight from an earlier run are expected before the receiver opens, so their callbacks
        (whose tokens derive from the ledger's secret and the attempt id) are accepted at once."""
        settings = self.config.callback
        if not settings.enabled:
            return None
        from transcribed.pipeline.context import callback_token
        from transcribed.receiver import CallbackHub, CallbackServer

        hub = CallbackHub(settings)
        for entry in ledger.in_flight():
            if entry.job_id and entry.attempt_id:
                hub.expect(entry.job_id, hub.issue(callback_token(secret, entry.attempt_id)))
        server = CallbackServer(hub, settings)
        server.start()
        stack.callback(server.stop)
        stack.callback(hub.close)
        host, port = server.address
        log.info("callback_listening", listen=f"{host}:{port}", callback_url=settings.public_url.rstrip("/")
                 + "/callback/...", webhook_url=hub.webhook_url)
        return hub

    def _serve_with(self, ledger: Ledger, *, once: bool, hub: CallbackHub | None, secret: bytes,
                    known: settled.Known, found: tuple[list[ReadyFile], list[Path]] | None,
                    stack: contextlib.ExitStack) -> int:
        from transcribed.gladia.retry import CircuitBreaker
        from transcribed.inbox.folders import FolderSettings
        from transcribed.pipeline.budget import HOLD_KIND, Budget
        from transcribed.pipeline.context import Context
        from transcribed.pipeline.pool import Pool
        from transcribed.pipeline.prepare import MediaTools

        spent, released = ledger.reconcile_spending()
        if spent or released:
            log.info("budget_reconciled", spent=spent, released=released)
        budget = Budget(self.config.budget, self.budget_clock)
        breaker = CircuitBreaker(probe_interval=self.config.gladia.outage_probe_seconds)
        ctx = Context(client=self._client(self.config, breaker), ledger=ledger, config=self.config, stop=self.stop,
                      clock=time.time, crash_at=self.crash_at, rng=random.Random(), hook_env=hook_environment(
                          self.environ), hub=hub, callback_secret=secret, started_at=time.time(),
                      media=MediaTools.find(self.config.media), budget=budget, metrics=self.metrics,
                      folders=FolderSettings(self.config))
        ledger.set_meta("daemon_pid", str(os.getpid()))
        ledger.set_meta("daemon_started", str(time.time()))
        if ledger.lift_holds(HOLD_KIND):     # measured again against the budget in force now
            log.info("budget_holds_lifted", why="start")
        pool = Pool(ctx)
        if self.fake_clock:
            pool.budget_tick = 0.5     # the test hook's clock can jump: look at it often
        if self.metrics is not None:
            from transcribed.cli.gauges import serve_metrics

            try:
                serve_metrics(stack, self.config.metrics, self.metrics, ledger, pool, budget)
            except OSError as exc:
                ctx.client.close()
                print(f"transcribed: cannot serve metrics on {self.config.metrics.listen} (metrics.listen): "
                      f"{exc.strerror or exc}", file=sys.stderr)
                return config.EX_CONFIG
        pool.start()
        integrations = None
        if not once and self.config.integrations.enabled:
            from transcribed.cli import integrations as integrations_wiring

            try:
                integrations = integrations_wiring.start(self.config, ctx, pool)
            except OSError as exc:
                print(f"transcribed: cannot listen on integrations.listen = {self.config.integrations.listen!r}: "
                      f"{exc.strerror or exc}", file=sys.stderr)
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
        pool.ctx.client = self._client(fresh, breaker=old.breaker)
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


def hook_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """The environment hooks and helpers run with: ours, minus the key and systemd's notify plumbing."""
    private = ("GLADIA_API_KEY", "CREDENTIALS_DIRECTORY", "NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID",
               "TRANSCRIBED_CRASH_AT", "TRANSCRIBED_TEST_HANG_MAIN_LOOP_AFTER")
    return {name: value for name, value in environ.items() if name not in private}


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


def _lock(ledger_path: Path) -> contextlib.AbstractContextManager[IO[str]]:
    """Hold an exclusive lock beside the ledger (one daemon per ledger); raise BlockingIOError if taken."""
    ledger_path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(ledger_path.with_name(ledger_path.name + ".lock"), "a+", encoding="utf-8")  # noqa: SIM115
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise
    handle.seek(0)
    handle.truncate()
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    return handle


def daemon_running(ledger_path: Path) -> int | None:
    """Return the pid of the daemon holding this ledger's lock, or None when none runs."""
    lock_path = ledger_path.with_name(ledger_path.name + ".lock")
    try:
        handle = open(lock_path, encoding="utf-8")  # noqa: SIM115
    except OSError:
        return None
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            text = handle.read().strip()
            return int(text) if text.isdigit() else -1
        fcntl.flock(handle, fcntl.LOCK_UN)
        return None
