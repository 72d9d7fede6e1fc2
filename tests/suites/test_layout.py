"""Tests mirror the package (docs/testing.md, "Where a test goes").

Outside `tests/suites/` and `tests/support/`, a test file tests one module:
`app/<path>/<module>.py` ↔ `tests/<path>/test_<module>.py`, or
`tests/<path>/test_<module>_<aspect>.py` for a second file about one aspect of it; a
package's `__init__.py` ↔ `tests/<path to package>/test_<package>.py`; `app/__main__.py`
↔ `tests/test_main.py`. Every module of `app/` with logic (a function or a class) has
its mirror file, or stands in `TESTED_ELSEWHERE` with the file that tests it and why.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
APP = ROOT / "app"
TESTS = ROOT / "tests"
CROSS_CUTTING = ("suites", "support")

# Modules with logic and no mirror file of their own: the file that tests each, and why.
# An entry for a module that gets its own mirror file fails the test below: remove it.
_PROVIDER_SUITE = "tests/providers/test_base.py"
_RUNS_PROVIDERS = "runs the provider suite against every provider in the registry"
TESTED_ELSEWHERE: dict[str, tuple[str, str]] = {
    "sharing.py": (
        "tests/multi/test_shared.py",
        "the protocol create_app takes; multi.shared's parts are what it is handed",
    ),
    "application.py": (
        "tests/test_routes.py",
        "create_app builds the proxy every test drives (make_proxy in tests/conftest.py)",
    ),
    "cache/keys.py": (_PROVIDER_SUITE, "a provider's cache key: stable, no personal data"),
    "cache/memory.py": ("tests/cache/test_store.py", "runs the store suite against it"),
    "cache/redis.py": ("tests/cache/test_store.py", "runs the store suite against it"),
    "cache/tiered.py": ("tests/cache/test_store.py", "runs the store suite against it"),
    "delivery/javascript.py": (
        "tests/delivery/test_inject.py",
        "the tokenizer is the placeholder scanner's: read through the pages it scans",
    ),
    "delivery/page.py": ("tests/cache/test_pages.py", "the page cache is its main source"),
    "options/__init__.py": (
        "tests/test_settings_secrets.py",
        "options are read through Settings.from_env: the _FILE forms, secret files",
    ),
    "options/parsers.py": (
        "tests/test_settings.py",
        "each parser through the variable it reads (test_bad_values_name_their_variable)",
    ),
    "providers/checking.py": (_PROVIDER_SUITE, "each provider's check against its stand-in"),
    "providers/neuroon/check.py": (_PROVIDER_SUITE, _RUNS_PROVIDERS),
    "providers/returningai/__init__.py": (_PROVIDER_SUITE, _RUNS_PROVIDERS),
    "providers/returningai/check.py": (_PROVIDER_SUITE, _RUNS_PROVIDERS),
    "providers/returningai/pages.py": (_PROVIDER_SUITE, _RUNS_PROVIDERS),
    "providers/returningai/settings.py": (
        "tests/test_settings.py",
        "the default vendor: VALID (tests/support) is its group",
    ),
    "providers/returningai/standin.py": (_PROVIDER_SUITE, _RUNS_PROVIDERS),
    "providers/returningai/tokens.py": (_PROVIDER_SUITE, _RUNS_PROVIDERS),
    "providers/returningai/widgets.py": (
        "tests/test_routes.py",
        "each configured widget and colour, and what is refused",
    ),
    "providers/returningai/sdk/__init__.py": (_PROVIDER_SUITE, _RUNS_PROVIDERS),
    "providers/returningai/sdk/check.py": (_PROVIDER_SUITE, _RUNS_PROVIDERS),
    "providers/returningai/sdk/standin.py": (_PROVIDER_SUITE, _RUNS_PROVIDERS),
    "providers/returningai/sdk/tokens.py": (_PROVIDER_SUITE, _RUNS_PROVIDERS),
    "rendering.py": (
        "tests/test_routes.py",
        "renders the HTML error page test_refused_requests_never_reach_upstream reads",
    ),
    "responses.py": (
        "tests/test_routes.py",
        "every refusal, as HTML and as JSON (test_refused_requests_never_reach_upstream)",
    ),
    "secret.py": ("tests/test_settings.py", "test_secrets_never_show"),
    "security/admission.py": (
        "tests/suites/test_security.py",
        "client IP, identity and rate limits in their order, through the whole proxy",
    ),
    "security/guard.py": (
        "tests/suites/test_security.py",
        "cross-site requests need an allowed origin, through the whole proxy",
    ),
    "security/headers.py": (
        "tests/suites/test_hostile.py",
        "oversized request headers are a 431 and memory stays flat",
    ),
    "servers.py": (
        "tests/test_reload.py",
        "BackgroundServer runs every real server of the tests; bind() there",
    ),
    "upstream/keyring.py": ("tests/suites/test_key_rotation.py", "rotating the vendor's key"),
    "workers.py": ("tests/test_reload.py", "reloading with one worker and with two"),
}


def has_logic(module: Path) -> bool:
    """Whether `module` defines a function or a class."""
    tree = ast.parse(module.read_text())
    kinds = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
    return any(isinstance(node, kinds) for node in ast.walk(tree))


def modules() -> dict[str, Path]:
    """Every module of app/, by its path relative to app/."""
    return {path.relative_to(APP).as_posix(): path for path in sorted(APP.rglob("*.py"))}


def mirror(module: str) -> str:
    """The test file that mirrors `module` (a path relative to app/)."""
    *folders, name = module.split("/")
    if name == "__main__.py":
        return "tests/test_main.py"
    stem = folders[-1] if name == "__init__.py" and folders else name.removesuffix(".py")
    return "/".join(["tests", *folders, f"test_{stem}.py"])


def files_outside_suites() -> list[str]:
    """Every test file outside the cross-cutting folders, relative to the checkout."""
    return sorted(
        path.relative_to(ROOT).as_posix()
        for path in TESTS.rglob("test_*.py")
        if path.relative_to(TESTS).parts[0] not in CROSS_CUTTING
    )


def misplaced(test_file: str, known: dict[str, Path]) -> bool:
    """Whether `test_file` mirrors no module: neither `test_<module>.py` nor
    `test_<module>_<aspect>.py` of a module in its folder's package."""
    mirrored = {mirror(module) for module in known if module != "__init__.py"}
    if test_file in mirrored:
        return False
    folder, _, name = test_file.rpartition("/")
    words = name.removeprefix("test_").removesuffix(".py").split("_")
    return not any(
        f"{folder}/test_{'_'.join(words[:n])}.py" in mirrored for n in range(1, len(words))
    )


def test_every_test_file_mirrors_a_module() -> None:
    known = modules()

    wrong = [path for path in files_outside_suites() if misplaced(path, known)]

    assert wrong == [], (
        "test files outside tests/suites/ and tests/support/ mirror a module of app/"
        " (docs/testing.md): move these, or make a cross-cutting one a suite"
    )


def test_every_module_with_logic_has_its_tests() -> None:
    missing = [
        name
        for name, path in modules().items()
        if has_logic(path) and not (ROOT / mirror(name)).exists() and name not in TESTED_ELSEWHERE
    ]

    assert missing == [], "give each its mirror file, or an entry in TESTED_ELSEWHERE"


def test_the_table_of_modules_tested_elsewhere_is_current() -> None:
    known = modules()

    stale = [
        name
        for name, (tested_in, _why) in TESTED_ELSEWHERE.items()
        if name not in known
        or not has_logic(known[name])
        or (ROOT / mirror(name)).exists()  # it has its own file now
        or not (ROOT / tested_in).is_file()
    ]

    assert stale == []


def test_every_test_folder_is_a_package() -> None:
    # Two test files of one name in two folders (test_settings.py) import apart only so.
    folders = {path.parent for path in TESTS.rglob("*.py")}

    assert (
        sorted(str(f.relative_to(ROOT)) for f in folders if not (f / "__init__.py").is_file()) == []
    )


@pytest.mark.parametrize(
    ("test_file", "wrong"),
    [
        ("tests/cache/test_store.py", False),
        ("tests/cache/test_topology_tls.py", False),  # an aspect of cache/topology.py
        ("tests/check/test_check.py", False),  # check/__init__.py
        ("tests/test_main.py", False),
        ("tests/test_main_signals.py", False),
        ("tests/security/test_memo.py", True),  # memo.py is at the top level
        ("tests/test_cli.py", True),
        ("tests/cache/test_coalesce.py", True),  # named for what it does, not its module
        ("tests/cache/test_cache_urls.py", False),  # an aspect of cache/__init__.py
        ("tests/test_init.py", True),
        ("tests/providers/test_hissuno.py", True),  # hissuno is a package: hissuno/test_…
    ],
)
def test_the_rule_itself(test_file: str, wrong: bool) -> None:
    assert misplaced(test_file, modules()) is wrong
