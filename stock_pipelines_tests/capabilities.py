"""Capabilities of the test machine that the suite claims: a browser, root, `chattr`, tmpfs mounts.

`require_capability(name, ok, why)` at the top of a test (or its fixture): when `ok` is false the
test is skipped with `why` on a developer's machine, and FAILS in CI (env CI=true, which the CI
runner sets and `.ci/run` exports), where the capability is installed on purpose and its absence
is a broken CI, not a reason to test less. The conftest prints every skip with its reason at the
end of a run and, in CI, fails the run on any skip left (however it was raised).
"""

from __future__ import annotations

import os

import pytest

CI_ENV = "CI"


def in_ci() -> bool:
    return os.environ.get(CI_ENV, "").strip().lower() in {"1", "true", "yes"}


def require_capability(name: str, ok: bool, why: str) -> None:
    if ok:
        return
    message = f"capability {name!r} missing: {why}"
    if in_ci():
        pytest.fail(f"{message} (CI={os.environ[CI_ENV]}: the CI machine must provide it, .ci/run installs the "
                    "packages; a skip here would hide the test)", pytrace=False)
    pytest.skip(message)


def require_binary(name: str, package: str) -> str:
    """The path of the program `name` (from the Debian package `package`, which .ci/run installs)."""
    import shutil

    path = shutil.which(name)
    require_capability(name, path is not None, f"no {name} binary (Debian package {package})")
    assert path is not None
    return path
