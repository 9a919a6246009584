"""`./run`, the repository's one entry point: its commands reach the project's CLI."""

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(ROOT / "run"), *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)


def test_run_soak_hands_its_arguments_to_the_soak_command():
    done = _run("soak", "--help")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: stock-pipelines soak") and "--quick" in done.stdout


def test_an_unknown_command_names_every_command_and_exits_2():
    done = _run("weekly")
    assert done.returncode == 2
    assert "usage: ./run [demo|test|soak|ui|setup]" in done.stderr
