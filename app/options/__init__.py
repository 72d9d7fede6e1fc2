"""How a setting is declared, once: an environment variable on a frozen dataclass field.

(The parsers are in `options.parsers`; the settings themselves in `settings` and in each
vendor's folder.)

`option(...)` puts the variable's name, default, help text and parser on the field
itself, so a settings class is its own table: `options_of(cls)` reads it back for
parsing, for `.env.example` and for the README's settings table.
"""

from __future__ import annotations

import json
import os
import stat
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, is_dataclass, replace
from pathlib import Path
from typing import Any, Final, TypeVar, dataclass_transform

from dotenv import dotenv_values

# Re-exported: a settings group declares its secret fields with it.
from ..secret import Secret as Secret
from . import published

T = TypeVar("T")

# A secret file holds one key or password; anything much larger is the wrong file.
MAX_SECRET_FILE: Final = 64 * 1024
# A local file is read in microseconds; a mount that takes this long is not answering.
SECRET_FILE_TIMEOUT: Final = 5.0


@dataclass(frozen=True, slots=True)
class Option:
    name: str  # the environment variable
    default: str | None  # None: required
    help: str
    parse: Callable[[str], Any]
    shown: str | None = None  # the default as the README says it, when derived
    field: str = ""  # the dataclass field it fills (set by options_of)
    vendor: str = ""  # the TOKEN_PROVIDER whose group declares it; "" for the core
    secret: bool = False  # a `Secret` field: it may also be read from `{name}_FILE`

    @property
    def file_name(self) -> str:
        return f"{self.name}_FILE"


def text(value: float | str | bool) -> str:
    """A component's default as a setting's default is written (README, `.env.example`):
    `2`, not `2.0`; `true`/`false`."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}" if value.is_integer() and abs(value) < 1e15 else repr(value)
    return str(value)


def option(
    name: str,
    default: str | None,
    help: str,
    parse: Callable[[str], Any],
    *,
    shown: str | None = None,
    secret: bool = False,
) -> Any:
    """A settings field read from the variable `name` (typed as the field's annotation).
    A `Secret` field is secret (it has a `{name}_FILE` form); `secret=True` says so of a
    value that holds one (a URL with a password)."""
    declared = Option(name, default, help, parse, shown, secret=secret)
    return field(metadata={"option": declared})


@dataclass_transform(frozen_default=True, field_specifiers=(option,))
def settings_group(cls: type[T]) -> type[T]:
    """A frozen dataclass whose fields are `option`s (type checkers see them as required)."""
    return dataclass(frozen=True, slots=True)(cls)


def options_of(cls: type, vendor: str = "") -> tuple[Option, ...]:
    return tuple(
        replace(
            f.metadata["option"],
            field=f.name,
            vendor=vendor,
            # Annotations are strings here (postponed evaluation); both spellings count.
            secret=f.metadata["option"].secret or f.type in (Secret, "Secret", "Secret | None"),
        )
        for f in fields(cls)
        if "option" in f.metadata
    )


def parse_options(
    options: tuple[Option, ...], env: Mapping[str, str], problems: list[str]
) -> dict[str, Any]:
    """Field values for `options` from `env`; each problem is appended to `problems`."""
    values: dict[str, Any] = {}
    for opt in options:
        raw = env.get(opt.name)
        from_file = opt.secret and bool(env.get(opt.file_name, "").strip())
        if from_file:
            if raw is not None and raw.strip():
                problems.append(f"{opt.name}: set either {opt.name} or {opt.file_name}, not both")
                continue
            try:
                raw = read_secret_file(env[opt.file_name].strip())
            except ValueError as exc:
                problems.append(f"{opt.file_name}: {exc}")
                continue
        if opt.default is None and (raw is None or not raw.strip()):
            when = f" with TOKEN_PROVIDER={opt.vendor}" if opt.vendor else ""
            # A secret of the proxy's own (not a vendor's key) is made by the merchant.
            make = f"; make one: {published.MAKE_ONE}" if opt.secret and not opt.vendor else ""
            problems.append(f"{opt.name}: required{when} ({opt.help}){make}")
            continue
        try:
            values[opt.field] = opt.parse(raw if raw is not None else opt.default or "")
        except ValueError as exc:
            problems.append(f"{opt.name}: {exc}")
            continue
        if opt.secret and (known := known_secret(opt, values[opt.field], from_file)):
            problems.append(known)
    return values


def known_secret(opt: Option, value: object, from_file: bool = False) -> str | None:
    """The problem with a secret setting whose value anyone may know (one this project
    published, or a placeholder: `published`), or None. The value is never quoted."""
    # A value that holds secrets rather than being one (a URL) says which they are.
    held = [value.reveal()] if isinstance(value, Secret) else getattr(value, "secrets", [])
    reason = next((r for s in held if s and (r := published.refusal(s))), None)
    if reason is None:
        return None
    where = f" (read from {opt.file_name})" if from_file else ""
    if not isinstance(value, Secret):
        return (
            f"{opt.name}{where}: its password {reason}; set a random one on the server and"
            f" here: {published.MAKE_ONE}"
        )
    if opt.vendor:
        return f"{opt.name}{where}: {reason}; set the key the vendor issued you"
    return f"{opt.name}{where}: {reason}; make one: {published.MAKE_ONE}"


def read_secret_file(path: str, *, timeout: float = SECRET_FILE_TIMEOUT) -> str:
    """A secret's value from its file (the Docker and Kubernetes secrets convention),
    whitespace around it trimmed; ValueError names what is wrong, never the content.

    Only a regular file is read. A FIFO, a device or a socket could block the reader
    for ever (at start-up, or on SIGHUP while the reload holds its lock, so that every
    later reload waits behind it) or never end: the file is opened without blocking and
    what was opened is checked, so a FIFO swapped in after a check can't slip through.
    A regular file on a network mount that stops answering is bounded by `timeout`."""
    return within(timeout, lambda: _read_regular(path), f"cannot read {path}")


def _read_regular(path: str) -> str:
    value = read_bounded(path, MAX_SECRET_FILE).strip()
    if not value:
        raise ValueError(f"{path} is empty")
    return value


def read_bounded(path: str | os.PathLike[str], limit: int) -> str:
    """A regular file's UTF-8 text, at most `limit` bytes; ValueError names what is
    wrong (never the content). Opened without blocking, then checked: a FIFO or a device
    is refused, not waited on (a config file's reader uses it too)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror or type(exc).__name__}") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise ValueError(f"{path} is not a regular file ({_kind(mode)}); name the file itself")
    with os.fdopen(fd, "rb") as file:
        try:
            data = file.read(limit + 1)
        except OSError as exc:
            raise ValueError(f"cannot read {path}: {exc.strerror or type(exc).__name__}") from None
    if len(data) > limit:
        raise ValueError(f"{path} is larger than {limit} bytes; is it the right file?")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"{path} is not UTF-8 text") from None


_KINDS: Final = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


def _kind(mode: int) -> str:
    return next((name for test, name in _KINDS if test(mode)), "not a file")


def within(timeout: float, work: Callable[[], T], failure: str) -> T:
    """`work()`'s result, or ValueError(`failure`) when it takes longer than `timeout`
    seconds. It runs in a daemon thread: one stuck in the kernel is left behind, and
    neither the caller nor the process's exit waits for it."""
    done: list[T] = []
    error: list[BaseException] = []

    def run() -> None:
        try:
            done.append(work())
        except BaseException as exc:  # handed to the caller as it is
            error.append(exc)

    thread = threading.Thread(target=run, name="widget-proxy-read", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise ValueError(f"{failure}: no answer in {timeout:g} s")
    if error:
        raise error[0]
    return done[0]


def canonical(*parts: object) -> str:
    """Settings objects (and plain values) as one string, secrets revealed: for hashing
    into a namespace, never for showing."""

    def flat(value: object) -> object:
        if isinstance(value, Secret):
            return value.reveal()
        if is_dataclass(value) and not isinstance(value, type):
            return [[f.name, flat(getattr(value, f.name))] for f in fields(value)]
        return repr(value)

    return json.dumps([flat(part) for part in parts])


def secrets_in(obj: object, skip: tuple[str, ...] = ()) -> list[str]:
    """The revealed values of every non-empty `Secret` field of a settings object."""
    found = (getattr(obj, f.name) for f in fields(obj) if f.name not in skip)  # type: ignore[arg-type]
    return [value.reveal() for value in found if isinstance(value, Secret) and value.reveal()]


def read_environ(env_file: Path | None = Path(".env")) -> dict[str, str]:
    """The process environment over an optional `.env` file; the environment wins."""
    merged: dict[str, str] = {}
    if env_file is not None and env_file.is_file():
        merged.update({k: v for k, v in dotenv_values(env_file).items() if v is not None})
    merged.update(os.environ)
    return merged
