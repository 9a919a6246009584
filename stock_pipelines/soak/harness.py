"""The soak itself: start the week's processes, play the fault schedule on the exchange's clock,
tick the schedules, watch, stop everything, and leave the run directory `soak.figures` reads.

Startup order and the shared clock: Redis, the exchange (pinned at 08:40 of the first day); then
the project clock's anchor is fixed a little ahead (`startup_budget_s`), the Dagster webserver,
the daemon and the fleet start together with STOCK_PIPELINES_FAKE_NOW `08:40@anchor*speed/night_speed`,
and at the anchor the exchange is released from 08:40 (late: from where the project clock
already is), so the exchange, the collectors (`clock: exchange`), the sensors and run workers
share one timeline: the day speed in the sessions' day windows, the night speed between them."""

from __future__ import annotations

import json
import signal
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import httpx

from stock_pipelines.market import SEOUL, krx_calendar
from stock_pipelines.ops.clock import ENV_FAKE_NOW, fake_now_value, parse_fake_now
from stock_pipelines.soak import dagster_stack as stack_sensors
from stock_pipelines.soak.dagster_stack import DagsterStack, ScheduleTicker, prepare_instance
from stock_pipelines.soak.faults import EXCHANGE_MODES, Injector
from stock_pipelines.soak.fleet_file import COLLECTORS, shared_environment, write_fleet_file
from stock_pipelines.soak.manifest import ExchangeParameters, FaultRecord, Manifest, RunDirectory
from stock_pipelines.soak.memory import MemoryPeaks
from stock_pipelines.soak.options import SoakOptions, clock_start, collectors_stop, end_of_soak, trading_days
from stock_pipelines.soak.processes import CLI, Children, free_port, start_exchange, start_redis, wait_until
from stock_pipelines.soak.receiver import webhook_receiver
from stock_pipelines.soak.schedule import PlannedFault, plan

PROGRESS_EVERY_S, TICK_EVERY_S, SAMPLE_EVERY_S = 5.0, 1.0, 2.0


class SoakInterrupted(Exception):
    pass


@dataclass
class ActiveFault:
    planned: PlannedFault
    record: FaultRecord
    token: object
    clears_at: datetime


@dataclass
class SoakOutcome:
    run_dir: Path
    days: list[str]
    faults_planned: int
    faults_injected: int
    faults_cleared: int
    fault_problems: list[str]
    schedule_runs: int
    schedule_errors: list[str]
    runs_by_status: dict[str, int]
    wall_s: float
    phases: dict[str, float] = field(default_factory=dict)   # wall seconds: startup, days, drain
    notes: list[str] = field(default_factory=list)


def _log(message: str) -> None:
    print(f"[soak] {message}", file=sys.stderr, flush=True)


class Soak:
    def __init__(self, options: SoakOptions, run_dir: Path, base_env: dict[str, str]) -> None:
        self.options, self.base_env = options, base_env
        self.run = RunDirectory(run_dir)
        self.logs = run_dir / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.children = Children(self.logs)
        self.days = trading_days(options.start, options.days)
        self.plan = plan(options.seed, self.days, [cid for cid, _ in COLLECTORS], options.quick)
        self.memory = MemoryPeaks()
        self.records: list[FaultRecord] = []
        self.lock = threading.Lock()
        self.exchange_lane = ThreadPoolExecutor(max_workers=1, thread_name_prefix="soak-exchange-faults")
        self.active: list[ActiveFault] = []
        self.problems: list[str] = []
        self.notes: list[str] = []
        self.phases: dict[str, float] = {}
        self.redis_port = free_port()

    # -- the run -------------------------------------------------------------------------------
    def run_soak(self) -> SoakOutcome:
        started = time.time()
        previous = {s: signal.signal(s, self._interrupt) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            with webhook_receiver(self.run) as webhook_url:
                self._start(webhook_url, started)
                self._phase("startup", started)
                self._play()
                self._phase("days", started)
                self._drain()
                self._phase("drain", started)
                self._finish(started)
        finally:
            self.children.stop_all()
            for signum, handler in previous.items():
                signal.signal(signum, handler)
        runs = self.final_runs
        return SoakOutcome(
            run_dir=self.run.path, days=[d.isoformat() for d in self.days], faults_planned=len(self.plan),
            faults_injected=len(self.records), faults_cleared=sum(r.cleared_wall is not None for r in self.records),
            fault_problems=self.problems, schedule_runs=len(self.ticker.launched), schedule_errors=self.ticker.errors,
            runs_by_status=_count(r["status"] for r in runs), wall_s=round(time.time() - started, 1),
            phases=self.phases, notes=self.notes)

    def _phase(self, name: str, started: float) -> None:
        """A phase's wall seconds, from the end of the previous one (the first: from `started`)."""
        elapsed = time.time() - started
        self.phases[name] = round(elapsed - sum(self.phases.values()), 1)
        _log(f"{name} took {self.phases[name]:.0f} s (wall {elapsed:.0f} s)")

    def _interrupt(self, signum, _frame) -> None:
        raise SoakInterrupted(f"signal {signum}")

    def _start(self, webhook_url: str, started: float) -> None:
        o, root = self.options, self.run.path
        data_dir, archive_dir = root / "data", root / "archive"
        storage = prepare_instance(self.children, root / "dagster_home", self.base_env, o.run_slots)
        self.redis_url = f"redis://127.0.0.1:{self.redis_port}/0"
        self.redis = start_redis(self.children, root / "redis", self.redis_port)
        first = clock_start(self.days[0])
        exchange_args = ["--date", self.days[0].isoformat(), "--seed", str(o.seed), "--symbols", str(o.symbols),
                         "--activity", str(o.activity), "--speed", str(o.speed), "--start", first.strftime("%H:%M"),
                         "--night-speed", str(o.night_speed), "--pin", "--overnight", "run", "--day-cache", "4"]
        self.exchange, start_line = start_exchange(self.children, exchange_args, dict(self.base_env))
        self.url = start_line["url"]
        self.env = shared_environment(self.base_env, data_dir=data_dir, archive_dir=archive_dir,
                                      redis_url=self.redis_url, exchange_url=self.url, webhook_url=webhook_url,
                                      retention_trading_days=o.retention_trading_days)
        _log(f"run directory {root}; exchange {self.url} pinned at {first:%Y-%m-%d %H:%M}; "
             f"days {', '.join(d.isoformat() for d in self.days)}; {len(self.plan)} faults planned (seed {o.seed})")
        self.stack = DagsterStack(self.children, dict(self.env), root / "dagster_home")
        self.stack.wait_for_storage(storage)
        # the project clock reaches 08:40 at the anchor: the webserver, the daemon and the fleet,
        # started together, must be up by then
        anchor = time.time() + o.startup_budget_s
        self.fake_now = fake_now_value(first, anchor, o.speed, o.night_speed)
        self.env[ENV_FAKE_NOW] = self.fake_now   # the daemon and its run workers follow the exchange
        self.stack.env[ENV_FAKE_NOW] = self.fake_now
        self.stack.start()   # the webserver: its code location evaluates the schedules at their tick times
        self.stack.start_daemon()
        self.fleet_file = write_fleet_file(root / "fleet.yaml", self.url, archive_dir, root / "fleet" / "status.json",
                                           o.symbols)
        self.fleet = self.children.start("collector", [*CLI, "fleet", "run", "--config", str(self.fleet_file)],
                                         self.env, "fleet.log", stdout=(self.logs / "fleet-events.jsonl").open("a"))
        self.stack.wait_for_webserver()
        _log(f"webserver answered after {self.stack.load_s:.0f} s")
        self.ticker = ScheduleTicker(self.stack, first=first.timestamp(), last=end_of_soak(self.days[-1]).timestamp(),
                                     only=o.schedules)
        self._release_clock(anchor, first)
        self.injector = Injector(self.url, self._collector_pid, self._kill_redis, self._start_redis,
                                 self.stack.kill_daemon, self.stack.start_daemon, CLI, self.env)
        self.manifest = Manifest(
            seed=o.seed, days=[d.isoformat() for d in self.days], quick=o.quick, exchange_url=self.url,
            exchange=ExchangeParameters(seed=o.seed, symbols=o.symbols, activity=o.activity, speed=o.speed,
                                        first_day=self.days[0].isoformat(), night_speed=o.night_speed),
            redis_url=self.redis_url, dagster_home=str(self.stack.home), archive_dir=str(archive_dir),
            lake_dir=str(data_dir), started_wall=started)
        self.run.write_manifest(self.manifest)

    def _release_clock(self, anchor: float, first: datetime) -> None:
        expected = {cid for cid, _ in COLLECTORS}
        running = lambda: {c for c, v in self._fleet_status()["collectors"].items() if v.get("state") == "running"}
        while time.time() < anchor and not (running() == expected and self.stack.sensors_running()):
            time.sleep(1)
        if running() != expected:
            self.notes.append(f"collectors not running at the clock's release: {sorted(expected - running())}")
        if not self.stack.sensors_running():
            self.notes.append("the daemon's sensors were not running yet at the clock's release")
        if time.time() < anchor:
            _log(f"daemon and fleet ready {anchor - time.time():.0f} s before the clock's release")
            time.sleep(anchor - time.time())
        else:
            self.notes.append(f"startup took {time.time() - anchor:.0f} s past its budget: the exchange "
                              "was released where the project clock already was")
        httpx.post(f"{self.url}/admin/clock", json={"at": self.now().isoformat(), "pinned": False},
                   timeout=10).raise_for_status()
        _log(f"exchange released at {self.now():%Y-%m-%d %H:%M:%S} ({self.options.speed:g}x, "
             f"{self.options.night_speed:g}x between sessions)")

    def now(self) -> datetime:
        return parse_fake_now(self.fake_now, time.time())

    # -- the days ------------------------------------------------------------------------------
    def _play(self) -> None:
        """Faults on this thread (on time to the exchange minute); schedule ticks, memory samples
        and progress lines on a watcher thread, whose GraphQL calls take seconds on a loaded machine."""
        pending = list(self.plan)
        stop_fleet_at, end_at = collectors_stop(self.days[-1]), end_of_soak(self.days[-1])
        fleet_stopped = False
        done = threading.Event()
        watcher = threading.Thread(target=self._watch, args=(done,), name="soak-watcher", daemon=True)
        watcher.start()
        try:
            while self.now() < end_at:
                now = self.now()
                while pending and now >= _due(pending[0]):
                    self._inject(pending.pop(0), now)
                with self.lock:
                    due = [a for a in self.active if now >= a.clears_at]
                for active in due:
                    self._clear(active)
                if not fleet_stopped and now >= stop_fleet_at:
                    self._clear_all()
                    self.fleet.stop()
                    fleet_stopped = True
                    _log(f"{now:%Y-%m-%d %H:%M} fleet stopped after the last close")
                time.sleep(0.05)
            self._clear_all()
        finally:
            self.exchange_lane.shutdown(wait=True)
            done.set()
            watcher.join(120)
        self._tick_schedules(self.now())

    def _watch(self, done: threading.Event) -> None:
        last_tick = last_progress = last_sample = 0.0
        while not done.is_set():
            wall = time.time()
            if wall - last_sample >= SAMPLE_EVERY_S:
                self._sample_memory()
                last_sample = wall
            if wall - last_tick >= TICK_EVERY_S:
                self._tick_schedules(self.now())
                last_tick = wall
            if wall - last_progress >= PROGRESS_EVERY_S:
                self._progress(self.now())
                last_progress = wall
            done.wait(0.2)

    def _tick_schedules(self, now: datetime) -> None:
        try:
            for run in self.ticker.tick(now.timestamp()):
                _log(f"{now:%Y-%m-%d %H:%M} launched {run['schedule']} run {run['run_key']} ({run['run_id'][:8]})")
        except (httpx.HTTPError, RuntimeError) as error:
            self.notes.append(f"schedule tick at {now:%Y-%m-%d %H:%M} failed: {type(error).__name__}")

    def _inject(self, fault: PlannedFault, now: datetime) -> None:
        """Signals, Redis and the daemon at once; the exchange's faults through one worker thread
        (in order), since its admin API can take seconds to answer while it streams at speed."""
        if fault.kind in EXCHANGE_MODES:
            self.exchange_lane.submit(self._inject_now, fault)
        else:
            self._inject_now(fault)

    def _inject_now(self, fault: PlannedFault) -> None:
        try:
            token = self.injector.inject(fault)
        except Exception as error:  # noqa: BLE001 - a fault that cannot be injected is reported, the soak goes on
            self.problems.append(f"{fault.id}: not injected: {type(error).__name__}: {error}")
            _log(f"{self.now():%Y-%m-%d %H:%M} fault {fault.id} NOT injected: {type(error).__name__}: {error}")
            return
        # when it took effect (the admin call may have waited on a busy exchange), not when it was due
        now = self.now()
        late = (now - _due(fault)).total_seconds() / 60
        record = FaultRecord(id=fault.id, kind=fault.kind, subject=fault.subject, day=fault.day.isoformat(),
                             injected_wall=time.time(), injected_exchange=now.isoformat())
        with self.lock:
            self.records.append(record)
            self.active.append(ActiveFault(fault, record, token, now + timedelta(minutes=fault.duration_min)))
            self.run.write_faults(self.records)
        _log(f"{now:%Y-%m-%d %H:%M} fault {fault.id} injected on {fault.subject} "
             f"({fault.duration_min} exchange min; {late:.0f} min after it was due)")

    def _clear(self, active: ActiveFault) -> None:
        fault = active.planned
        if fault.kind == "collector_sigkill" and not self._restarted(fault.subject, active.token):
            return   # cleared once the fleet has it running again
        with self.lock:
            self.active.remove(active)
        if fault.kind in EXCHANGE_MODES:
            self.exchange_lane.submit(self._clear_now, active)
        else:
            self._clear_now(active)

    def _clear_now(self, active: ActiveFault) -> None:
        fault = active.planned
        try:
            note = self.injector.clear(fault, active.token)
        except Exception as error:  # noqa: BLE001 - reported; the next faults still run
            self.problems.append(f"{fault.id}: not cleared: {error}")
            return
        if note:
            self.notes.append(f"{fault.id}: {note}")
        with self.lock:
            active.record.cleared_wall = time.time()
            self.run.write_faults(self.records)
        _log(f"{self.now():%Y-%m-%d %H:%M} fault {fault.id} cleared")

    def _clear_all(self, timeout_s: float = 120.0) -> None:
        """Everything still broken put right (a SIGKILLed collector: waited for, up to `timeout_s`)."""
        deadline = time.time() + timeout_s
        while True:
            with self.lock:
                remaining = list(self.active)
            if not remaining or time.time() > deadline:
                break
            for active in remaining:
                self._clear(active)
            time.sleep(0.5)
        for active in remaining:
            self.problems.append(f"{active.planned.id}: never cleared ({active.planned.subject} not running again)")

    # -- the processes the faults reach --------------------------------------------------------
    def _fleet_status(self) -> dict:
        path = self.run.path / "fleet" / "status.json"
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            return {"collectors": {}}

    def _collector_pid(self, collector_id: str) -> int | None:
        collector = self._fleet_status()["collectors"].get(collector_id) or {}
        return collector.get("pid") if collector.get("state") == "running" else None

    def _restarted(self, collector_id: str, killed_pid) -> bool:
        pid = self._collector_pid(collector_id)
        return pid is not None and pid != killed_pid

    def _kill_redis(self) -> None:
        self.redis.signal_group(signal.SIGKILL)
        self.redis.process.wait(10)

    def _start_redis(self) -> None:
        self.redis = start_redis(self.children, self.run.path / "redis", self.redis_port)

    def _sample_memory(self) -> None:
        kinds: dict[str, list[int]] = {}
        for child in self.children.started:
            if child.alive():
                kinds.setdefault(child.kind, []).append(child.pid)
        self.memory.sample(kinds)

    def _progress(self, now: datetime) -> None:
        injected = len(self.records)
        runs = _count(r["status"] for r in self.stack.runs_quietly())
        _log(f"{now:%a %Y-%m-%d %H:%M} | faults {injected}/{len(self.plan)} injected, {len(self.active)} active | "
             f"schedule runs {len(self.ticker.launched)} | runs {runs}")

    # -- the end ------------------------------------------------------------------------------
    def _drain(self) -> None:
        """Wait (wall time) for every queued or running run to end. The clock keeps running past the
        week into the next session, so the sensors that watch today end first (`end_the_watch`),
        before that session opens."""
        calendar = krx_calendar()
        next_open = calendar.session(calendar.next_trading_day(self.days[-1])).open
        self.notes += stack_sensors.end_the_watch(self.stack, self.now, next_open)
        if not self.stack.wait_for_runs(self.options.drain_timeout_s, _log, PROGRESS_EVERY_S):
            self.notes.append(f"runs still busy after {self.options.drain_timeout_s:.0f} s of draining")

    def _finish(self, started: float) -> None:
        self.final_runs = self.stack.runs_quietly()
        self._sample_memory()
        self.run.write_calls(httpx.get(f"{self.url}/admin/stats", timeout=30).json())
        self.run.write_memory(self.memory.peaks)
        ended = time.time()
        self.manifest.ended_wall, self.manifest.wall_s = ended, round(ended - started, 1)
        self.manifest.phases = dict(self.phases)
        self.run.write_manifest(self.manifest)
        (self.run.path / "runs.json").write_text(json.dumps(self.final_runs, indent=1))


def _due(fault: PlannedFault) -> datetime:
    return datetime.combine(fault.day, datetime.min.time(), tzinfo=SEOUL) + timedelta(minutes=fault.minute)


def _count(values) -> dict[str, int]:
    counts: dict[str, int] = {}
    for value in values:
        counts[value] = counts.get(value, 0) + 1
    return dict(sorted(counts.items()))


def outcome_json(outcome: SoakOutcome) -> str:
    return json.dumps({**asdict(outcome), "run_dir": str(outcome.run_dir)}, ensure_ascii=False)
