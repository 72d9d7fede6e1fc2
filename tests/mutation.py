"""Mutation testing (mutmut) of the modules where a silent bug costs most. Not part of CI.

    .venv/bin/pip install mutmut==3.8.1
    .venv/bin/python tests/mutation.py [--module M ...] [--max-children N] [--workspace DIR]
    .venv/bin/python tests/mutation.py --module upstream/breaker.py --workspace DIR --recheck

`--module` (repeatable; a path under `app/`, as in `MODULES`) mutates that module only
and runs only its own tests, so one module takes minutes, not an hour; without it every
module in `MODULES` is mutated. `--workspace` keeps the scratch copy (and mutmut's
results) in DIR; run again there, mutmut checks only mutants it has not judged yet, and
`--recheck` judges its survivors again against the current tests.

mutmut names each mutant after its file's path, and the tests import the package as
`widget_proxy`, so the run happens in a scratch copy where the package folder bears
that name. Prints, per module, how many mutants there are, how many were checked and
killed, and the score; `docs/testing.md` records the last run.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_INJECT = ("tests/delivery/test_inject.py",)
_CLIENT = ("tests/upstream/test_client.py",)
# Each module, and the tests that exercise it in this process (mutants don't reach
# subprocesses), not the browser's: a mutant is judged in seconds, not minutes.
MODULES: dict[str, tuple[str, ...]] = {
    "delivery/inject.py": _INJECT,  # the placeholder scanner and escaping
    "delivery/javascript.py": _INJECT,  # the tokenizer that tells code from strings
    "security/origins.py": ("tests/security/test_origins.py",),  # origin matching
    "security/identity.py": ("tests/security/test_identity.py",),  # identity
    "security/forwarded.py": ("tests/security/test_forwarded.py",),  # forwarded headers
    "upstream/breaker.py": ("tests/upstream/test_breaker.py", *_CLIENT),  # the breaker
    "upstream/client.py": _CLIENT,  # the retry policy
    "upstream/answers.py": ("tests/upstream/test_answers.py", *_CLIENT),  # what answers mean
    "cache/tokens.py": ("tests/cache/test_tokens.py",),  # the token cache
    "cache/pages.py": ("tests/cache/test_pages.py",),  # the page cache
    "security/ratelimit.py": ("tests/security/test_ratelimit.py",),  # who is limited
    "cache/counts.py": ("tests/cache/test_counts.py",),  # the rate limiter's counts
}
# A mutant that hangs the tests (a timeout) or kills their process is caught too.
KILLED = {"killed", "timeout", "segfault"}
UNCHECKED = {"not checked", "check was interrupted by user"}


def main() -> int:
    parser = argparse.ArgumentParser(prog="python tests/mutation.py")
    parser.add_argument(
        "--module",
        action="append",
        choices=sorted(MODULES),
        help="mutate only this module, with its own tests (repeatable; default: all)",
    )
    parser.add_argument("--max-children", type=int, default=2)
    parser.add_argument("--workspace", type=Path, help="keep the scratch copy here")
    parser.add_argument(
        "--recheck", action="store_true", help="judge the workspace's survivors again"
    )
    args = parser.parse_args()
    modules = tuple(args.module or MODULES)
    workspace = args.workspace or Path(tempfile.mkdtemp(prefix="widget-proxy-mutation-"))
    prepare(workspace, modules)
    mutmut = Path(sys.executable).with_name("mutmut")
    survivors = [n for n, s in _statuses(mutmut, workspace) if s not in KILLED | UNCHECKED]
    if args.recheck and not survivors:
        print("no survivors to recheck", file=sys.stderr)
    else:
        subprocess.run(
            [str(mutmut), "run", "--max-children", str(args.max_children)]
            + (survivors if args.recheck else []),
            cwd=workspace,
            stdout=subprocess.DEVNULL,
            check=True,
        )
    print(report(_statuses(mutmut, workspace), modules))
    print(f"survivors: cd {workspace} && {mutmut} show <name>", file=sys.stderr)
    return 0


def prepare(workspace: Path, modules: tuple[str, ...]) -> None:
    workspace.mkdir(parents=True, exist_ok=True)
    for name, source in (("widget_proxy", "app"), ("tests", "tests"), ("bench", "bench")):
        shutil.copytree(ROOT / source, workspace / name, dirs_exist_ok=True)
    shutil.copytree(ROOT / "templates", workspace / "templates", dirs_exist_ok=True)
    tests = sorted({t for m in modules for t in MODULES[m] if (ROOT / t).exists()})
    config = (ROOT / "pyproject.toml").read_text()
    config += "\n[tool.mutmut]\n" + "\n".join(
        (
            'source_paths = ["widget_proxy"]',
            f"only_mutate = {json.dumps([f'widget_proxy/{m}' for m in modules])}",
            f"pytest_add_cli_args_test_selection = {json.dumps(tests)}",
            # mutmut records in this process which tests reach which function: no workers.
            'pytest_add_cli_args = ["-n", "0"]',
            'also_copy = ["bench", "templates"]',
            # A mutant that loops is stopped after 4x (not 15x) its tests' CPU time.
            "timeout_multiplier = 4.0",
        )
    )
    (workspace / "pyproject.toml").write_text(config + "\n")


def _statuses(mutmut: Path, workspace: Path) -> list[tuple[str, str]]:
    """(mutant, status) of every mutant in the workspace, from `mutmut results --all`."""
    if not (workspace / "mutants").exists():
        return []
    listing = subprocess.run(
        [str(mutmut), "results", "--all", "true"],
        cwd=workspace,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    pairs = (line.strip().rpartition(": ") for line in listing.splitlines())
    return [(name, status) for name, _, status in pairs if name]


def module_of(mutant: str) -> str:
    """`widget_proxy.upstream.client.x_HttpClient__call__mutmut_3` → `upstream/client.py`."""
    return mutant.rsplit(".", 1)[0].removeprefix("widget_proxy.").replace(".", "/") + ".py"


def report(statuses: list[tuple[str, str]], modules: tuple[str, ...]) -> str:
    """A Markdown table of mutants, checked, killed and survived per module."""
    counts: dict[str, Counter[str]] = {m: Counter() for m in modules}
    for name, status in statuses:
        if (module := module_of(name)) in counts:
            counts[module][status] += 1
    rows = [
        "| module | mutants | checked | killed | survived | score |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    total = Counter[str]()
    for module, seen in counts.items():
        total.update(seen)
        rows.append(_row(module, seen))
    rows.append(_row("**all**", total))
    return "\n".join(rows)


def _row(name: str, seen: Counter[str]) -> str:
    mutants = sum(seen.values())
    checked = mutants - sum(seen[s] for s in UNCHECKED)
    killed = sum(seen[s] for s in KILLED)
    score = f"{100 * killed / checked:.1f} %" if checked else "n/a"
    return f"| {name} | {mutants} | {checked} | {killed} | {checked - killed} | {score} |"


if __name__ == "__main__":
    sys.exit(main())
