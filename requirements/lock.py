"""The lock: exact, hashed versions of everything the demo and the tests install.

    .venv/bin/python requirements/lock.py            # after editing pyproject.toml
    .venv/bin/python requirements/lock.py --upgrade  # take the newest allowed releases

`pyproject.toml` keeps ranges for merchants who install the package; CI, the README's
commands and contributors install `requirements/*.txt` instead, with pip's
`--require-hashes`, so a release upstream can't change what a fresh machine gets. Each
lock names, in its first line, a digest of the `pyproject.toml` tables it was made
from; `tests/suites/test_lock.py` fails when they no longer match.

- `requirements/test.txt`: the package, its `test` extra (pytest, linters, pip-tools),
  its `docs` extra (MkDocs and Material: CI and a test build the docs site strictly),
  its `granian` extra (the tests run `serve --server granian` too), its `otel` extra
  (the tracing tests) and the build
  backend (installed with `--no-build-isolation`, so hatchling is locked too);
- `requirements/demo.txt`: the package and the build backend only, at the same
  versions as `test.txt` (it is compiled with `test.txt` as its constraint);
- `requirements/runtime.txt`: what the package needs to run, and nothing to build it
  with, at the same versions again: what the container image installs (`Dockerfile`).

All three are compiled by pip-tools on the tested platform (CPython 3.11, Linux x86_64);
every file of a release is hashed, so other platforms' wheels install as well.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
LOCKS = ROOT / "requirements"
DIGEST_LINE = "# pyproject.toml dependencies sha256: "
# The extras `requirements/test.txt` installs besides the package: the docs extra rides
# in it (one environment runs the suite and builds the site), granian for the tests of
# `serve --server granian`, otel for the tracing tests (docs/tracing.md).
TESTED_EXTRAS = ("test", "docs", "granian", "otel")


def pyproject_digest(pyproject: Path = ROOT / "pyproject.toml") -> str:
    """A digest of what a lock is made from: the build backend's requirements, the
    dependencies and the extras (not the rest of pyproject.toml)."""
    data: dict[str, Any] = tomllib.loads(pyproject.read_text())
    project = data["project"]
    made_from = {
        "build-system.requires": data["build-system"]["requires"],
        "dependencies": project["dependencies"],
        "optional-dependencies": project.get("optional-dependencies", {}),
        "requires-python": project.get("requires-python", ""),
    }
    text = json.dumps(made_from, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def recorded_digest(lock: Path) -> str | None:
    first = lock.read_text().splitlines()[0] if lock.exists() else ""
    return first.removeprefix(DIGEST_LINE) if first.startswith(DIGEST_LINE) else None


def locked_versions(lock: Path) -> dict[str, str]:
    """Normalised package name → exact version, as the lock pins them."""
    pins: dict[str, str] = {}
    for line in lock.read_text().splitlines():
        if line and not line[0].isspace() and not line.startswith(("#", "-")):
            name, _, rest = line.partition("==")
            pins[normalise(name)] = rest.split()[0].rstrip("\\").strip()
    return pins


def normalise(name: str) -> str:
    return name.strip().lower().replace("_", "-").replace(".", "-")


def compile_lock(output: Path, *args: str, upgrade: bool, build_deps: bool = True) -> None:
    command = [
        sys.executable,
        "-m",
        "piptools",
        "compile",
        "--quiet",
        "--generate-hashes",
        "--allow-unsafe",
        "--strip-extras",
        # The build backend, for `pip install --no-build-isolation -e .` from the lock.
        *(["--build-deps-for=editable"] if build_deps else []),
        # Where the packages came from is this machine's business, not the lock's.
        "--no-emit-index-url",
        "--no-emit-find-links",
        "--no-emit-trusted-host",
        f"--output-file={output.relative_to(ROOT)}",
        *(["--upgrade"] if upgrade else []),
        *args,
        "pyproject.toml",
    ]
    subprocess.run(command, cwd=ROOT, check=True)  # noqa: S603
    body = output.read_text()
    output.write_text(f"{DIGEST_LINE}{pyproject_digest()}\n{body}")


def refresh(*, upgrade: bool = False) -> None:
    LOCKS.mkdir(exist_ok=True)
    test = LOCKS / "test.txt"
    compile_lock(test, *(f"--extra={extra}" for extra in TESTED_EXTRAS), upgrade=upgrade)
    # The demo's set is a subset of the tests', at the very same versions.
    constraint = f"--constraint={test.relative_to(ROOT)}"
    compile_lock(LOCKS / "demo.txt", constraint, upgrade=False)
    # The image's: the wheel is built in another stage, so no build backend here.
    compile_lock(LOCKS / "runtime.txt", constraint, upgrade=False, build_deps=False)


if __name__ == "__main__":
    refresh(upgrade="--upgrade" in sys.argv[1:])
