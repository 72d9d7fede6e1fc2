"""Mutation testing (mutmut) of the modules where a silent bug costs most. Not part of CI.

    .venv/bin/pip install mutmut && .venv/bin/python tests/mutation.py [--max-children N]

mutmut names each mutant after its file's path, and the tests import the package as
`widget_proxy`, so the run happens in a scratch copy where the package folder bears
that name. Prints the score of each module; `docs/testing.md` records the last run.
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
MODULES = (
    "delivery/inject.py",  # the placeholder scanner and escaping
    "delivery/javascript.py",  # the tokenizer that tells code from strings and comments
    "security/origins.py",  # origin matching
    "security/identity.py",  # identity
    "security/forwarded.py",  # forwarded-header parsing
    "upstream/breaker.py",  # the circuit breaker
    "upstream/client.py",  # the retry policy
    "upstream/answers.py",  # what an answer's status and headers mean
    "cache/tokens.py",  # the token cache
    "cache/pages.py",  # the page cache
    "security/ratelimit.py",  # the rate limiter
)
# The tests that exercise them in this process (mutants don't reach subprocesses), and
# not the browser's: a mutant is judged in seconds, not minutes.
TESTS = (
    "tests/delivery/test_inject.py",
    "tests/security/test_origins.py",
    "tests/security/test_identity.py",
    "tests/security/test_security.py",
    "tests/upstream/test_client.py",
    "tests/cache/test_tokens.py",
    "tests/cache/test_pages.py",
    "tests/cache/test_coalesce.py",
    "tests/providers/test_returningai_api.py",
)
KILLED = {"killed", "timeout"}  # a mutant that hangs the tests is caught too


def main() -> int:
    parser = argparse.ArgumentParser(prog="python tests/mutation.py")
    parser.add_argument("--max-children", type=int, default=2)
    parser.add_argument("--workspace", type=Path, help="keep the scratch copy here")
    args = parser.parse_args()
    workspace = args.workspace or Path(tempfile.mkdtemp(prefix="widget-proxy-mutation-"))
    prepare(workspace)
    mutmut = Path(sys.executable).with_name("mutmut")
    subprocess.run(
        [str(mutmut), "run", "--max-children", str(args.max_children)],
        cwd=workspace,
        stdout=subprocess.DEVNULL,
        check=True,
    )
    listing = subprocess.run(
        [str(mutmut), "results", "--all", "true"],
        cwd=workspace,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    print(report(listing))
    print(f"survivors: cd {workspace} && {mutmut} show <name>", file=sys.stderr)
    return 0


def prepare(workspace: Path) -> None:
    workspace.mkdir(parents=True, exist_ok=True)
    for name, source in (("widget_proxy", "app"), ("tests", "tests"), ("bench", "bench")):
        shutil.copytree(ROOT / source, workspace / name, dirs_exist_ok=True)
    shutil.copytree(ROOT / "templates", workspace / "templates", dirs_exist_ok=True)
    config = (ROOT / "pyproject.toml").read_text()
    config += "\n[tool.mutmut]\n" + "\n".join(
        (
            'source_paths = ["widget_proxy"]',
            f"only_mutate = {json.dumps([f'widget_proxy/{m}' for m in MODULES])}",
            f"pytest_add_cli_args_test_selection = {json.dumps(list(TESTS))}",
            'also_copy = ["bench", "templates"]',
        )
    )
    (workspace / "pyproject.toml").write_text(config + "\n")


def report(listing: str) -> str:
    """A Markdown table of killed / all mutants per module, from `mutmut results --all`."""
    counts: dict[str, Counter[str]] = {m: Counter() for m in MODULES}
    for line in listing.splitlines():
        name, _, status = line.strip().rpartition(": ")
        module = name.rsplit(".", 1)[0].removeprefix("widget_proxy.").replace(".", "/") + ".py"
        if module in counts:
            counts[module][status] += 1
    rows = ["| module | killed | survived | score |", "|---|---:|---:|---:|"]
    total = Counter[str]()
    for module, seen in counts.items():
        total.update(seen)
        rows.append(_row(module, seen))
    rows.append(_row("**all**", total))
    return "\n".join(rows)


def _row(name: str, seen: Counter[str]) -> str:
    killed = sum(seen[s] for s in KILLED)
    mutants = sum(seen.values())
    score = f"{100 * killed / mutants:.1f} %" if mutants else "n/a"
    return f"| {name} | {killed} | {mutants - killed} | {score} |"


if __name__ == "__main__":
    sys.exit(main())
