"""The fleet file (YAML): which collectors to run and the settings they share.

```yaml
archive_dir: /data/archive          # optional: STOCK_PIPELINES_ARCHIVE_DIR of every collector
redis_url_env: REDIS_URL            # the NAME of the variable holding the Redis URL
exchange: {kis_base_url: http://exchange:8700}      # optional: KIS_BASE_URL / KIS_WS_URL
status_file: /data/fleet/status.json                # default: <data dir>/fleet/status.json
metrics_host: 127.0.0.1             # the address every collector's metrics port binds
collectors:
  - id: kis-1
    symbols: ["005930", "000660"]   # or symbols_file: kis-1.txt (relative to this file)
    source: kis                      # passed on as `collector run --source`
    app_keys: [{key_env: KIS_APP_KEY_A, secret_env: KIS_APP_SECRET_A}]
    metrics_port: 9101               # optional: `--metrics-port`, unique in the fleet
    fallback: kiwoom                 # optional: `--fallback`, the other broker, with its key:
    fallback_app_key: {key_env: KIWOOM_APP_KEY_A, secret_env: KIWOOM_SECRET_KEY_A}
```

Only variable names are written here, never a key or a secret: the supervisor copies the values
from its own environment into each child's. Validation is strict (unknown fields are errors)
and every problem is reported at once, one line each, naming its place in the file.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from stock_pipelines.archive.layout import InvalidCollectorId, check_collector_id
from stock_pipelines.archive.record import is_valid_symbol
from stock_pipelines.collector.config import ConfigError, parse_symbols

ENV_NAME = re.compile(r"^[A-Z_][A-Z0-9_]*$")


class FleetConfigError(ValueError):
    """The fleet file is unusable; `problems` holds one line per problem."""

    def __init__(self, path: Path, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(f"{path}: {p}" for p in problems))


def collector_setting(name: str) -> str:
    """A `collector_settings` key's variable: STOCK_PIPELINES_COLLECTOR_<NAME> (docs/collector.md)."""
    return f"STOCK_PIPELINES_COLLECTOR_{name}"


def _env_name(value: str) -> str:
    if not ENV_NAME.match(value):
        raise ValueError(f"{value!r} is not an environment variable name (A-Z, 0-9, _): "
                         "write the variable's NAME here, never its value")
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class KeyPair(_Strict):
    key_env: str
    secret_env: str

    @field_validator("key_env", "secret_env")
    @classmethod
    def _names(cls, value: str) -> str:
        return _env_name(value)


class Backoff(_Strict):
    base_s: float = Field(gt=0)
    cap_s: float = Field(gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> Backoff:
        if self.cap_s < self.base_s:
            raise ValueError(f"cap_s ({self.cap_s}) is below base_s ({self.base_s})")
        return self


class Exchange(_Strict):
    kis_base_url: str | None = None
    kis_ws_url: str | None = None
    kiwoom_base_url: str | None = None


class CollectorSpec(_Strict):
    id: str
    symbols: list[str] | None = None
    symbols_file: str | None = None
    source: Literal["kis", "kiwoom"] = "kis"
    app_keys: list[KeyPair] = Field(default_factory=lambda: [KeyPair(key_env="KIS_APP_KEY",
                                                                     secret_env="KIS_APP_SECRET")])
    secondary_app_key: KeyPair | None = None
    fallback: Literal["kis", "kiwoom"] | None = None
    fallback_app_key: KeyPair | None = None
    metrics_port: int | None = Field(default=None, ge=1, le=65535)

    @field_validator("id")
    @classmethod
    def _id(cls, value: str) -> str:
        try:
            return check_collector_id(value)
        except InvalidCollectorId as error:
            raise ValueError(str(error)) from None

    @field_validator("symbols", mode="before")
    @classmethod
    def _codes_as_text(cls, value: object) -> object:
        # YAML reads 005930 as the integer 5930 and 000660 as octal: ask for quotes
        if isinstance(value, list) and any(not isinstance(v, str) for v in value):
            raise ValueError("quote every code (\"005930\"): YAML reads unquoted digits as numbers")
        return value

    @model_validator(mode="after")
    def _one_symbol_source(self) -> CollectorSpec:
        if (self.symbols is None) == (self.symbols_file is None):
            raise ValueError("give exactly one of symbols or symbols_file")
        if not self.app_keys:
            raise ValueError("app_keys is empty: a collector needs at least one app key")
        return self

    @model_validator(mode="after")
    def _fallback_broker(self) -> CollectorSpec:
        if self.fallback is None:
            if self.fallback_app_key is not None:
                raise ValueError("fallback_app_key is given without a fallback broker")
            return self
        if self.fallback == self.source:
            raise ValueError(f"fallback {self.fallback} is the source itself: name the other broker")
        if self.fallback_app_key is None:
            raise ValueError(f"fallback {self.fallback} needs fallback_app_key (that broker's key and secret)")
        if self.secondary_app_key is not None:
            # the collector fails over to one secondary feed: the fallback broker replaces the second KIS key
            raise ValueError("give either fallback or secondary_app_key, not both")
        return self


class FleetFile(_Strict):
    collectors: list[CollectorSpec] = Field(min_length=1)
    archive_dir: str | None = None
    redis_url_env: str = "REDIS_URL"
    exchange: Exchange = Field(default_factory=Exchange)
    clock: Literal["system", "exchange"] = "system"
    status_file: str | None = None
    collector_settings: dict[str, str | int | float] = Field(default_factory=dict)
    restart_backoff: Backoff = Field(default_factory=lambda: Backoff(base_s=1.0, cap_s=60.0))
    stable_after_s: float = Field(default=60.0, gt=0)
    diagnosis_retry: Backoff = Field(default_factory=lambda: Backoff(base_s=60.0, cap_s=900.0))
    stop_timeout_s: float = Field(default=20.0, gt=0)
    switch_poll_s: float = Field(default=2.0, gt=0)
    metrics_host: str = Field(default="127.0.0.1", min_length=1)

    @field_validator("redis_url_env")
    @classmethod
    def _redis_env(cls, value: str) -> str:
        return _env_name(value)

    @field_validator("collector_settings")
    @classmethod
    def _settings(cls, value: dict) -> dict:
        for name in value:
            _env_name(collector_setting(name))
        return value

    @model_validator(mode="after")
    def _unique_ids(self) -> FleetFile:
        ids = [c.id for c in self.collectors]
        twice = sorted({i for i in ids if ids.count(i) > 1})
        if twice:
            raise ValueError(f"collector ids must be unique: {', '.join(twice)} appear more than once")
        return self

    @model_validator(mode="after")
    def _unique_metrics_ports(self) -> FleetFile:
        owners: dict[int, list[str]] = {}
        for collector in self.collectors:
            if collector.metrics_port is not None:
                owners.setdefault(collector.metrics_port, []).append(collector.id)
        shared = [f"{port} ({', '.join(ids)})" for port, ids in sorted(owners.items()) if len(ids) > 1]
        if shared:
            raise ValueError(f"metrics ports must be unique: {'; '.join(shared)} share a port")
        return self


class FleetConfig:
    """A validated fleet file, with symbols resolved and paths made absolute."""

    def __init__(self, path: Path, spec: FleetFile, symbols: dict[str, list[str]], data_dir: Path) -> None:
        self.path, self.spec, self.symbols = path, spec, symbols
        base = path.parent
        self.status_file = (base / spec.status_file).resolve() if spec.status_file else (
            data_dir / "fleet" / "status.json")
        self.archive_dir = (base / spec.archive_dir).resolve() if spec.archive_dir else None

    @property
    def collectors(self) -> list[CollectorSpec]:
        return self.spec.collectors

    def metrics_url(self, collector: CollectorSpec) -> str | None:
        """Where the collector's /metrics answers, seen from the fleet's host (a wildcard bind
        answers on the loopback address too)."""
        if collector.metrics_port is None:
            return None
        host = self.spec.metrics_host
        host = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{collector.metrics_port}/metrics"


def load_fleet_config(path: Path, data_dir: Path) -> FleetConfig:
    """Parse and validate `path`; raise FleetConfigError listing every problem."""
    path = Path(path).resolve()
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise FleetConfigError(path, [f"cannot read ({error.strerror or error})"]) from None
    except yaml.YAMLError as error:
        raise FleetConfigError(path, [f"not valid YAML: {' '.join(str(error).split())}"]) from None
    if not isinstance(raw, dict):
        raise FleetConfigError(path, ["expected a mapping with a `collectors` list at the top"])
    try:
        spec = FleetFile.model_validate(raw)
    except ValidationError as error:
        raise FleetConfigError(path, [_describe(e, raw) for e in error.errors()]) from None
    symbols, problems = {}, []
    for index, collector in enumerate(spec.collectors):
        where = f"collectors[{index}] ({collector.id})"
        if collector.symbols is not None:
            bad = [code for code in collector.symbols if not is_valid_symbol(code)]
            if bad or not collector.symbols:
                problems.append(f"{where}.symbols: not KRX short codes ([0-9A-Z]{{6}}): {', '.join(bad[:5])}"
                                if bad else f"{where}.symbols: empty")
                continue
            symbols[collector.id] = list(dict.fromkeys(collector.symbols))
            continue
        file = (path.parent / collector.symbols_file).resolve()
        if not file.is_file():
            problems.append(f"{where}.symbols_file: no such file {file}")
            continue
        try:
            symbols[collector.id] = parse_symbols(str(file))
        except ConfigError as error:
            problems.append(f"{where}.symbols_file: {str(error).removeprefix('--symbols: ')}")
    if problems:
        raise FleetConfigError(path, problems)
    return FleetConfig(path, spec, symbols, data_dir)


def missing_environment(config: FleetConfig, environ: Mapping[str, str]) -> list[str]:
    """The variables the fleet file names that the supervisor's environment lacks (names only)."""
    problems = []
    for collector in config.collectors:
        extra = [p for p in (collector.secondary_app_key, collector.fallback_app_key) if p is not None]
        pairs = [*collector.app_keys, *extra]
        for pair in pairs:
            for name in (pair.key_env, pair.secret_env):
                if not environ.get(name):
                    problems.append(f"collector {collector.id}: {name} is not set in the environment")
    return problems


def _describe(error: dict, raw: dict) -> str:
    where = _location(error["loc"], raw)
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        message = "unknown field (a typo?)"
    return f"{where}: {message}" if where else message


def _location(loc: tuple, raw: dict) -> str:
    parts: list[str] = []
    node: object = raw
    for step in loc:
        if isinstance(step, int):
            parts[-1] += f"[{step}]"
            node = node[step] if isinstance(node, list) and step < len(node) else None
            if isinstance(node, dict) and "id" in node and len(parts) == 1:
                parts[-1] += f" ({node['id']})"
        else:
            parts.append(str(step))
            node = node.get(step) if isinstance(node, dict) else None
    return ".".join(parts)
