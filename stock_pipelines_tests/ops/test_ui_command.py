"""`stock-pipelines ui` opens dagster dev on this project's workspace and DAGSTER_HOME."""

import argparse
from pathlib import Path

from stock_pipelines.commands.ui import REPO_ROOT, command


def test_ui_runs_dagster_dev_on_the_workspace_with_the_repository_home_by_default(monkeypatch):
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    argv, env = command(argparse.Namespace(host="127.0.0.1", port=3999))
    assert Path(argv[0]).name == "dagster" and argv[1:3] == ["dev", "-w"]
    assert argv[3] == str(REPO_ROOT / "workspace.yaml") and argv[-4:] == ["-h", "127.0.0.1", "-p", "3999"]
    assert env["DAGSTER_HOME"] == str(REPO_ROOT / "dagster_home")
    monkeypatch.setenv("DAGSTER_HOME", "/elsewhere")
    assert command(argparse.Namespace(host="127.0.0.1", port=3000))[1]["DAGSTER_HOME"] == "/elsewhere"
