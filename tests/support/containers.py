"""podman, and a base image made here: the container image built and run without a registry.

No container registry is reachable from this workplace, so the Dockerfile's base
(`python:3.11-slim-bookworm`) can't be pulled. `standin_base` makes one that is laid out
the same way, on this machine: a Debian bookworm root (debootstrap, minbase, from the
machine's Debian mirror) with the CPython 3.11 that runs the tests copied to /usr/local,
as the official image has its own, and this machine's CA bundle (its TLS-inspecting
egress signs PyPI's certificate; pip in the build trusts it through `PIP_CERT`). It is
built once per machine (~2 minutes) and kept in podman's store under `STANDIN_BASE`.

podman runs as root here with two of the sandbox's limits worked around, by flags a
normal machine accepts too: crun refuses the host's hybrid cgroup layout (runc is used
when installed), and raising RLIMIT_NPROC or RLIMIT_NOFILE past what this process has
is refused (both are given explicitly, within it). Containers use the host's network:
a published port would be reached through the bridge's private addresses, and the
tests reach nothing but loopback.
"""

from __future__ import annotations

import resource
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Final

from tests.support import unavailable

STANDIN_BASE: Final = "localhost/widget-proxy-standin-python:3.11"
# What python:3.11-slim-bookworm carries beside Python, and the libraries its build links.
BASE_PACKAGES: Final = (
    "ca-certificates,netbase,tzdata,libssl3,libffi8,libsqlite3-0,libbz2-1.0,liblzma5,"
    "libreadline8,libncursesw6,zlib1g,libexpat1,libuuid1,libtirpc3"
)
HOST_CA: Final = Path("/etc/ssl/certs/ca-certificates.crt")
NPROC: Final = 4096  # past a limit of the sandbox's, setting RLIMIT_NPROC is refused


def podman_or_skip() -> str:
    """podman's path, or a skip (the container test needs podman and a root that may use it)."""
    found = shutil.which("podman")
    if found is None:
        unavailable("podman is not installed (apt-get install podman runc debootstrap)")
    assert found is not None
    return found


def podman(
    *args: str, timeout: float = 600, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """`podman ARGS`, with the runtime that works here; its output as text."""
    runtime = ["--runtime", "runc"] if shutil.which("runc") else []
    return subprocess.run(
        [podman_or_skip(), *runtime, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=check,
    )


def limits() -> list[str]:
    """`--ulimit` flags within this process's own limits (podman's defaults are above)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return ["--ulimit", f"nofile={soft}:{hard}", "--ulimit", f"nproc={NPROC}:{NPROC}"]


def has_image(name: str) -> bool:
    return podman("image", "exists", name, check=False).returncode == 0


def standin_base() -> str:
    """`STANDIN_BASE`, made now if podman's store doesn't have it yet."""
    if has_image(STANDIN_BASE):
        return STANDIN_BASE
    debootstrap, chroot = shutil.which("debootstrap"), shutil.which("chroot")
    if debootstrap is None or chroot is None:
        unavailable("debootstrap is not installed (apt-get install debootstrap)")
    assert debootstrap is not None
    assert chroot is not None
    with tempfile.TemporaryDirectory(prefix="widget-proxy-base-") as scratch:
        root = Path(scratch, "root")
        subprocess.run(
            [debootstrap, "--variant=minbase", f"--include={BASE_PACKAGES}", "bookworm", root],
            capture_output=True,
            check=True,
            timeout=900,
        )
        _copy_python(root / "usr" / "local")
        subprocess.run([chroot, root, "ldconfig"], check=True, timeout=60)
        if HOST_CA.is_file():
            shutil.copyfile(HOST_CA, root / "etc/ssl/certs/ca-certificates.crt")
        archive = Path(scratch, "root.tar")
        with tarfile.open(archive, "w") as tar:
            tar.add(root, arcname=".")
        podman(
            "import",
            *("--change", "ENV LANG=C.UTF-8"),
            *("--change", f"ENV PIP_CERT={HOST_CA}"),
            *("--change", 'CMD ["python3"]'),
            str(archive),
            STANDIN_BASE,
        )
    return STANDIN_BASE


def _copy_python(local: Path) -> None:
    """The CPython running the tests, into `local` (/usr/local): the interpreter, its
    shared library and its standard library, none of its installed packages."""
    prefix = Path(sys.base_prefix)
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    (local / "bin").mkdir(parents=True, exist_ok=True)
    (local / "lib").mkdir(parents=True, exist_ok=True)
    shutil.copy2(prefix / "bin" / version, local / "bin" / version)
    for alias in ("python3", "python"):
        (local / "bin" / alias).symlink_to(version)
    for library in (prefix / "lib").glob(f"lib{version}*.so*"):
        shutil.copy2(library, local / "lib" / library.name, follow_symlinks=False)
    shutil.copytree(
        prefix / "lib" / version,
        local / "lib" / version,
        symlinks=True,
        ignore=shutil.ignore_patterns("site-packages", "test", "__pycache__", "idlelib"),
    )
    (local / "lib" / version / "site-packages").mkdir()


def build_image(context: Path, tag: str, base: str) -> None:
    """The Dockerfile at `context`, built on `base`, as `tag`."""
    podman(
        "build",
        "--format=docker",  # the OCI format has no HEALTHCHECK: podman would drop it
        "--network=host",
        *limits(),
        *("--build-arg", f"PYTHON_IMAGE={base}"),
        *("--tag", tag),
        str(context),
        timeout=900,
    )
