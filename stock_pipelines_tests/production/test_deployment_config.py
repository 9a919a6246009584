"""docker/ kept in step with the code, without a Docker engine: Compose's own validation, the image's
commands parsed by the real CLIs, environment variables provided or documented, and every
dagster.yaml through Dagster's own config validation."""

import argparse
import re
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.instance.config import dagster_instance_config
from dagster._core.instance.ref import InstanceRef

from stock_pipelines_tests.dagster_dev import REPO_ROOT
from stock_pipelines_tests.production.deployment import (
    COMPOSE,
    DOCKER,
    INSTANCE_FILES,
    SCALE_OUT,
    compose_config,
    env_example,
    env_names_the_code_reads,
    env_refs,
    load_yaml,
    parse_click,
    resolved_compose,
)

IMAGE_SERVICES = {"user_code", "webserver", "daemon", "exchange", "fleet"}
# run the pipeline's code (runs, sensors, collectors) or hand env to runs
CODE_SERVICES = {"user_code", "daemon", "fleet"}
LAKE_ENV = {"STOCK_PIPELINES_DATA_DIR", "STOCK_PIPELINES_ARCHIVE_DIR"}  # also the image's ENV defaults
DEPLOYMENT_ENV = LAKE_ENV | {"REDIS_URL", "STOCK_PIPELINES_BROKER", "KIS_BASE_URL", "KIS_APP_KEY",
                             "KIS_APP_SECRET", "STOCK_PIPELINES_REDIS_PREFIX"}
# Files the image has at these paths (Dockerfile: WORKDIR /opt/dagster/app, COPY docker/workspace.yaml
# ./workspace.yaml), so the CLIs that check a path exists can parse the commands here.
IN_IMAGE = {"/opt/dagster/app/workspace.yaml": str(DOCKER / "workspace.yaml")}
PG_ENV = {"DAGSTER_POSTGRES_HOST", "DAGSTER_POSTGRES_PORT", "DAGSTER_POSTGRES_DB", "DAGSTER_POSTGRES_USER",
          "DAGSTER_POSTGRES_PASSWORD"}


@pytest.fixture(scope="module")
def compose() -> dict:
    return resolved_compose(COMPOSE)


def test_compose_files_pass_compose_validation():
    for files in ((COMPOSE,), (COMPOSE, SCALE_OUT)):
        for profiles in ((), ("sim",)):
            result = compose_config(*files, env=env_example(), profiles=profiles)
            assert result.returncode == 0, (files, profiles, result.stderr)


def test_compose_refuses_to_start_without_a_database_password():
    env = {k: v for k, v in env_example().items() if k != "DAGSTER_POSTGRES_PASSWORD"}
    result = compose_config(COMPOSE, env=env)
    assert result.returncode != 0
    assert "set DAGSTER_POSTGRES_PASSWORD in docker/.env" in result.stderr


def test_services_profiles_and_persistence(compose):
    services = compose["services"]
    assert set(services) == {"postgres", "redis", "user_code", "webserver", "daemon", "exchange", "fleet"}
    assert services["exchange"]["profiles"] == ["sim"]
    assert all("profiles" not in s for name, s in services.items() if name != "exchange")
    assert "exchange" not in resolved_compose(COMPOSE, profiles=())["services"]

    redis = services["redis"]
    command = redis["command"]
    assert command[command.index("--appendonly") + 1] == "yes"
    assert command[command.index("--dir") + 1] == "/data"
    assert any(v["type"] == "volume" and v["target"] == "/data" for v in redis["volumes"])
    postgres = services["postgres"]
    assert any(v["type"] == "volume" and v["target"] == "/var/lib/postgresql/data"
               for v in postgres["volumes"])
    for name in ("postgres", "redis", "user_code"):
        assert services[name]["healthcheck"]["test"], name
    assert services["webserver"]["ports"][0]["target"] == 3000


def test_every_command_parses_with_the_cli_the_image_installs(compose):
    from dagster._cli import create_dagster_cli
    from dagster._daemon.cli import cli as daemon_cli
    from dagster_webserver.cli import cli as webserver_cli

    from stock_pipelines.cli import build_parser

    clis = {"dagster": create_dagster_cli(), "dagster-webserver": webserver_cli, "dagster-daemon": daemon_cli}
    services = compose["services"]
    image = services["user_code"]["image"]
    commands = [services[name]["command"] for name in IMAGE_SERVICES]
    commands.append(services["user_code"]["healthcheck"]["test"][1:])  # after "CMD"
    commands.append(services["fleet"]["healthcheck"]["test"][1:])
    for name in IMAGE_SERVICES:
        assert services[name]["image"] == image, name
    for argv in commands:
        if argv[0] == "stock-pipelines":
            parser = build_parser()
            parser.exit_on_error = False
            try:
                parser.parse_args(argv[1:])
            except (argparse.ArgumentError, SystemExit) as error:
                pytest.fail(f"{argv}: {error}")
        else:
            parse_click(clis[argv[0]], [IN_IMAGE.get(arg, arg) for arg in argv])
    code_server = services["user_code"]["command"]
    module = code_server[code_server.index("-m") + 1]
    __import__(module)  # the module the code server serves loads


def test_the_fleet_service_supervises_the_example_fleet_file(compose):
    from stock_pipelines.fleet.config import load_fleet_config

    fleet = compose["services"]["fleet"]
    assert fleet["restart"] == "unless-stopped"
    config_path = fleet["command"][fleet["command"].index("--config") + 1]
    (mount,) = [v for v in fleet["volumes"] if v["target"] == config_path]
    assert mount["type"] == "bind" and mount.get("read_only")
    assert Path(mount["source"]) == DOCKER / "fleet.yaml"
    assert any(v["type"] == "volume" and v["target"] == "/data" for v in fleet["volumes"])
    health = fleet["healthcheck"]["test"]
    assert health[:4] == ["CMD", "stock-pipelines", "fleet", "status"] and "--check" in health
    assert health[health.index("--config") + 1] == config_path
    config = load_fleet_config(DOCKER / "fleet.yaml", Path("/data/lake"))  # the example file validates
    assert config.archive_dir == Path(fleet["environment"]["STOCK_PIPELINES_ARCHIVE_DIR"])
    assert config.status_file.is_relative_to("/data")  # on the volume, beside the archive
    # every app-key variable the file names is in the service's environment
    named = {name for c in config.collectors for pair in c.app_keys
             for name in (pair.key_env, pair.secret_env)}
    assert named <= set(fleet["environment"])
    # compose waits longer than the supervisor's own graceful stop before it SIGKILLs
    grace = fleet["stop_grace_period"]
    grace_s = float(grace.removesuffix("s")) if isinstance(grace, str) else grace / 1e9
    assert grace_s > config.spec.stop_timeout_s
    assert fleet["depends_on"]["redis"]["condition"] == "service_healthy"


def test_workspace_points_at_the_code_server(compose):
    (entry,) = load_yaml(DOCKER / "workspace.yaml")["load_from"]
    grpc = entry["grpc_server"]
    command = compose["services"]["user_code"]["command"]
    assert grpc["host"] == "user_code"
    assert str(grpc["port"]) == command[command.index("-p") + 1]
    assert grpc["location_name"] == command[command.index("--location-name") + 1] == "stock_pipelines"
    assert command[command.index("-m") + 1] == "stock_pipelines.definitions"
    for name in ("webserver", "daemon"):
        argv = compose["services"][name]["command"]
        assert argv[argv.index("-w") + 1] == "/opt/dagster/app/workspace.yaml", name


def test_dockerfile_installs_the_pins_and_copies_what_the_workspace_needs(compose):
    dockerfile = (DOCKER / "Dockerfile").read_text()
    assert re.search(r"^RUN pip install -r requirements\.txt$", dockerfile, re.M)
    assert "requirements-dev" not in dockerfile  # the runtime pins only: no test packages in production
    # the official Python image by default; docker/build-local passes a debootstrap base instead
    assert re.search(r"^ARG BASE_IMAGE=python:3\.11-slim-bookworm$", dockerfile, re.M)
    assert re.search(r"^FROM \$\{BASE_IMAGE\}$", dockerfile, re.M)
    assert "WORKDIR /opt/dagster/app" in dockerfile
    assert "DAGSTER_HOME=/opt/dagster/dagster_home" in dockerfile
    ignored = {line.strip() for line in (DOCKER / "Dockerfile.dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")}
    copies = re.findall(r"^COPY (.+)$", dockerfile, re.M)
    sources = [src for line in copies for src in line.split()[:-1]]
    for source in sources:
        assert (REPO_ROOT / source).exists(), source
        assert source.split("/")[0] not in ignored, source
    assert {"requirements.txt", "pyproject.toml", "README.md", "stock_pipelines", "docker/workspace.yaml",
            "docker/dagster.yaml"} <= set(sources)
    assert "COPY docker/dagster.yaml ${DAGSTER_HOME}/dagster.yaml" in dockerfile
    assert "COPY docker/workspace.yaml ./workspace.yaml" in dockerfile
    for name in ("user_code", "webserver", "daemon"):
        targets = {v["target"] for v in compose["services"][name]["volumes"]}
        assert "/opt/dagster/dagster_home/storage" in targets, name  # compute logs, shared


def test_environment_the_code_reads_is_provided_or_documented(compose):
    documented = (REPO_ROOT / "docs" / "production.md").read_text()
    missing = sorted(name for name in env_names_the_code_reads() if f"`{name}`" not in documented)
    assert not missing, f"environment variables read by the code but not in docs/production.md: {missing}"
    services = compose["services"]
    for name in CODE_SERVICES:
        assert DEPLOYMENT_ENV <= set(services[name]["environment"]), name
    assert services["user_code"]["environment"]["REDIS_URL"] == "redis://redis:6379/0"
    for name in ("user_code", "webserver", "daemon"):
        environment = services[name]["environment"]
        for path in (INSTANCE_FILES["compose"], INSTANCE_FILES["scale-out"]):
            assert env_refs(load_yaml(path)) - {"STOCK_PIPELINES_IMAGE"} <= set(environment), (name, path)
        assert services[name]["environment"]["DAGSTER_POSTGRES_HOST"] == "postgres"
    assert "STOCK_PIPELINES_IMAGE" in services["daemon"]["environment"]


@pytest.mark.parametrize("which", sorted(INSTANCE_FILES))
def test_dagster_yaml_passes_dagster_validation(which, tmp_path, monkeypatch):
    path = INSTANCE_FILES[which]
    for name in PG_ENV:
        monkeypatch.setenv(name, "5432" if name.endswith("PORT") else "x")
    monkeypatch.setenv("STOCK_PIPELINES_IMAGE", "stock_pipelines:latest")
    (tmp_path / "dagster.yaml").write_text(path.read_text())
    config, custom_class = dagster_instance_config(str(tmp_path))
    assert custom_class is None
    ref = InstanceRef.from_dir(str(tmp_path))
    launcher = ref.run_launcher  # built from its config class: the launcher's own schema is checked
    coordinator = ref.run_coordinator
    assert type(coordinator).__name__ == "QueuedRunCoordinator"
    assert config["concurrency"]["runs"]["max_concurrent_runs"] >= 1
    if which == "embedded":
        return
    assert ref.storage_data.class_name == "DagsterPostgresStorage"
    assert config["run_retries"]["enabled"] is True
    monitoring = config["run_monitoring"]
    assert monitoring["enabled"] is True
    # Resume attempts only where the launcher can resume a run whose worker died.
    resumes = monitoring["max_resume_run_attempts"] > 0
    assert resumes == launcher.supports_resume_run, type(launcher).__name__


def test_scale_out_differs_from_compose_only_in_the_launcher(compose):
    base = load_yaml(INSTANCE_FILES["compose"])
    scale = load_yaml(INSTANCE_FILES["scale-out"])
    assert base["run_launcher"]["class"] == "DefaultRunLauncher"
    assert scale["run_launcher"]["class"] == "DockerRunLauncher"
    def strip(config: dict) -> dict:
        return {k: v for k, v in config.items() if k not in {"run_launcher", "run_monitoring"}}

    assert strip(base) == strip(scale)
    assert {k: v for k, v in base["run_monitoring"].items() if k != "max_resume_run_attempts"} == {
        k: v for k, v in scale["run_monitoring"].items() if k != "max_resume_run_attempts"}

    launcher = scale["run_launcher"]["config"]
    assert launcher["network"] == compose["networks"]["pipeline"]["name"]
    volumes = {v["source"]: v["target"] for v in compose["services"]["user_code"]["volumes"]}
    named = {compose["volumes"][key]["name"]: target for key, target in volumes.items()}
    for mount in launcher["container_kwargs"]["volumes"]:
        source, target = mount.split(":")
        assert named.get(source) == target, mount  # the same volume, at the same path as in user_code
    daemon_env = set(resolved_compose(COMPOSE, SCALE_OUT)["services"]["daemon"]["environment"])
    assert set(launcher["env_vars"]) <= daemon_env  # the daemon has what it hands to runs
    assert DEPLOYMENT_ENV - LAKE_ENV <= set(launcher["env_vars"])


def test_run_concurrency_limits_name_tags_the_jobs_set():
    from stock_pipelines.defs.jobs.recovery import RUN_KIND_TAG, recovery_job

    for which, path in INSTANCE_FILES.items():
        limits = load_yaml(path)["concurrency"]["runs"]["tag_concurrency_limits"]
        assert {"key": RUN_KIND_TAG, "value": recovery_job.tags[RUN_KIND_TAG], "limit": 1} in limits, which


def test_the_stock_pipelines_commands_in_the_production_guide_parse():
    from stock_pipelines.cli import build_parser

    text = (REPO_ROOT / "docs" / "production.md").read_text().replace("\\\n", " ")
    lines = [line for block in re.findall(r"```bash\n(.*?)```", text, re.S) for line in block.splitlines()]
    commands = [line.split("stock-pipelines", 1)[1].split() for line in lines
                if "stock-pipelines " in line and not line.lstrip().startswith("#")]
    assert commands, "the guide shows how to put a simulated day into the archive"
    for argv in commands:
        parser = build_parser()
        parser.exit_on_error = False
        try:
            parser.parse_args(argv)
        except (argparse.ArgumentError, SystemExit) as error:
            pytest.fail(f"stock-pipelines {' '.join(argv)}: {error}")


def declared_pools() -> set[str]:
    from stock_pipelines.definitions import defs

    return {
        node.definition.pool
        for job in defs.resolve_all_job_defs()
        for node in job.graph.nodes
        if node.definition.pool is not None
    }


@pytest.mark.parametrize("which", sorted(INSTANCE_FILES))
def test_every_pool_the_steps_declare_is_sized_by_each_instance(which, tmp_path, monkeypatch):
    """The broker pool the steps claim exists, with a limit, wherever runs execute."""
    from stock_pipelines.defs.broker_steps import BROKER_POOL

    assert declared_pools() == {BROKER_POOL}
    for name in PG_ENV:
        monkeypatch.setenv(name, "5432" if name.endswith("PORT") else "x")
    monkeypatch.setenv("STOCK_PIPELINES_IMAGE", "stock_pipelines:latest")
    (tmp_path / "dagster.yaml").write_text(INSTANCE_FILES[which].read_text())
    config, _ = dagster_instance_config(str(tmp_path))
    pools = config["concurrency"]["pools"]
    # no per-pool limits in dagster.yaml: every pool gets default_limit, enforced per op
    assert pools["default_limit"] >= 1 and pools.get("granularity", "op") == "op"
    if which == "embedded":  # the SQLite instance `./run ui` uses enforces it too
        with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
            assert instance.event_log_storage.supports_global_concurrency_limits
            info = instance.event_log_storage.get_concurrency_info(BROKER_POOL)
            assert info.limit == pools["default_limit"]
