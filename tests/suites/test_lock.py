"""The lock (`requirements/*.txt`) against `pyproject.toml`, the README and CI.

A changed `pyproject.toml` without a refreshed lock fails here, so what CI installs is
always what the ranges allow, and refreshed on purpose (`requirements/lock.py`).
"""

from __future__ import annotations

import importlib.util
import re
import tomllib
from pathlib import Path
from types import ModuleType

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]
TEST_LOCK = ROOT / "requirements" / "test.txt"
DEMO_LOCK = ROOT / "requirements" / "demo.txt"
RUNTIME_LOCK = ROOT / "requirements" / "runtime.txt"  # the container image's
LOCKS = [TEST_LOCK, DEMO_LOCK, RUNTIME_LOCK]


def _lock_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("lock", ROOT / "requirements" / "lock.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


lock = _lock_module()
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
RUNTIME = [Requirement(r) for r in PYPROJECT["project"]["dependencies"]]
BUILD = [Requirement(r) for r in PYPROJECT["build-system"]["requires"]]
EXTRAS = PYPROJECT["project"]["optional-dependencies"]
# What requirements/test.txt installs besides the package: the test extra, the docs
# extra (CI builds the site) and the extras the tests run (granian).
TEST = [Requirement(r) for extra in lock.TESTED_EXTRAS for r in EXTRAS[extra]]


@pytest.mark.parametrize("path", LOCKS, ids=lambda p: p.name)
def test_each_lock_was_made_from_this_pyproject(path: Path) -> None:
    assert lock.recorded_digest(path) == lock.pyproject_digest(), (
        f"{path.name} was made from another pyproject.toml: run"
        " `.venv/bin/python requirements/lock.py` and commit requirements/"
    )


@pytest.mark.parametrize(
    "edit",
    [
        ('"jinja2>=3.1"', '"jinja2>=3.2"'),  # a range
        ('"ruff>=0.8"', '"ruff>=0.8",\n    "coverage>=7"'),  # a tool added to an extra
        ('"mkdocs>=1.6"', '"mkdocs>=1.6.1"'),  # the docs extra
        ('requires = ["hatchling>=1.25"]', 'requires = ["hatchling>=1.26"]'),  # the backend
    ],
    ids=["dependency", "extra", "docs", "build-system"],
)
def test_the_digest_sees_every_table_a_lock_is_made_from(
    tmp_path: Path, edit: tuple[str, str]
) -> None:
    text = (ROOT / "pyproject.toml").read_text()
    assert edit[0] in text
    changed = tmp_path / "pyproject.toml"
    changed.write_text(text.replace(edit[0], edit[1]))
    assert lock.pyproject_digest(changed) != lock.pyproject_digest()


@pytest.mark.parametrize(
    ("path", "requirements"),
    [
        (TEST_LOCK, RUNTIME + BUILD + TEST),
        (DEMO_LOCK, RUNTIME + BUILD),
        (RUNTIME_LOCK, RUNTIME),
    ],
    ids=["test", "demo", "runtime"],
)
def test_every_direct_requirement_is_pinned_within_its_range(
    path: Path, requirements: list[Requirement]
) -> None:
    pins = lock.locked_versions(path)
    for requirement in requirements:
        name = lock.normalise(requirement.name)
        assert name in pins, f"{requirement} is not in {path.name}"
        assert requirement.specifier.contains(pins[name], prereleases=True), (
            f"{path.name} pins {name}=={pins[name]}, outside {requirement}"
        )


@pytest.mark.parametrize("path", [DEMO_LOCK, RUNTIME_LOCK], ids=lambda p: p.name)
def test_the_demo_and_the_image_install_what_the_tests_test(path: Path) -> None:
    test, pins = lock.locked_versions(TEST_LOCK), lock.locked_versions(path)
    assert pins, f"{path.name} pins nothing"
    assert {name: test.get(name) for name in pins} == pins


def test_the_images_lock_has_no_build_backend() -> None:
    # The image builds its wheel in a stage of its own (Dockerfile): hatchling stays there.
    pins = lock.locked_versions(RUNTIME_LOCK)
    assert not {lock.normalise(r.name) for r in BUILD} & set(pins)


@pytest.mark.parametrize("path", LOCKS, ids=lambda p: p.name)
def test_every_pin_carries_hashes(path: Path) -> None:
    # pip's --require-hashes refuses a lock without them; this says which line.
    entries = re.split(r"\n(?=[a-z0-9])", path.read_text())
    pinned = [e for e in entries if re.match(r"[a-z0-9][\w.-]*==", e)]
    assert len(pinned) == len(lock.locked_versions(path))
    assert not [e.split()[0] for e in pinned if "--hash=sha256:" not in e]


def test_the_readme_and_ci_install_from_the_lock() -> None:
    readme = (ROOT / "README.md").read_text()
    commands = [line for line in readme.splitlines() if line.startswith("python3 -m venv")]
    assert len(commands) == 2, commands
    demo, tests = sorted(commands, key=lambda line: "pytest" in line)
    assert "--require-hashes -r requirements/demo.txt" in demo
    assert "--require-hashes -r requirements/test.txt" in tests
    for command in commands:
        assert "--no-deps --no-build-isolation -e ." in command
    ci = (ROOT / ".ci" / "run").read_text()
    assert "--require-hashes -r requirements/test.txt" in ci


def test_the_readme_names_the_tested_versions() -> None:
    readme = (ROOT / "README.md").read_text()
    line = next((ln for ln in readme.splitlines() if ln.startswith("Tested with")), "")
    named = dict(re.findall(r"`([\w.-]+)==([\w.]+)`", line))
    pins = lock.locked_versions(TEST_LOCK)
    assert {lock.normalise(r.name) for r in RUNTIME} <= {lock.normalise(n) for n in named}
    assert {lock.normalise(n): v for n, v in named.items()} == {
        lock.normalise(n): pins[lock.normalise(n)] for n in named
    }
