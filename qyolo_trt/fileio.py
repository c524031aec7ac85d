"""Atomic artifact writes and content hashes."""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any


def finite(v: float) -> float | str:
    """JSON has no inf / nan: non-finite numbers become strings ("inf": identical outputs)."""
    return v if math.isfinite(v) else str(v)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temp path beside ``path``; rename it onto ``path`` only if the block succeeds.

    Nothing is left behind on failure: neither a half-written target nor the temp file.
    """
    from .errors import QyoloError

    target = Path(path)
    if target.is_dir():
        raise QyoloError(f"cannot write {target}: it is a directory")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except OSError as exc:
        raise QyoloError(f"cannot write {target}: {(exc.strerror or str(exc)).lower()}") from None
    os.close(fd)
    tmp_path = Path(tmp)
    tmp_path.chmod(0o666 & ~_umask())  # mkstemp makes 0600; artifacts get the usual permissions
    try:
        try:
            yield tmp_path
            os.replace(tmp_path, target)
        except OSError as exc:  # disk full, quota, read-only: one line naming the artifact, not the temp file
            raise QyoloError(f"cannot write {target}: {(exc.strerror or str(exc)).lower()}") from None
    finally:
        tmp_path.unlink(missing_ok=True)


def write_all(files: Sequence[tuple[str | os.PathLike, bytes]]) -> None:
    """Write several artifacts all-or-nothing: every temp file is written before the first rename."""
    with contextlib.ExitStack() as stack:
        for path, data in files:
            stack.enter_context(atomic_path(path)).write_bytes(data)


def refuse_overwrite(outputs: Iterable[str | os.PathLike | None], inputs: Iterable[str | os.PathLike | None]) -> None:
    """Refuse outputs that are one of the inputs (same file, also through a symlink or a hard link) or each other."""
    from .errors import QyoloError

    seen: dict[tuple[int, int] | Path, Path] = {}
    for p in (Path(q) for q in inputs if q is not None):
        if p.is_file():
            seen[_identity(p)] = p
    outs: dict[Path, Path] = {}
    for p in (Path(q) for q in outputs if q is not None):
        if p.is_dir():
            raise QyoloError(f"cannot write {p}: it is a directory")
        if p.exists() and _identity(p) in seen:
            raise QyoloError(f"refusing to overwrite the input {seen[_identity(p)]} with output {p}; choose another output path")
        key = p.resolve()
        if key in outs:
            raise QyoloError(f"two outputs name the same file {p}; choose different paths")
        outs[key] = p


def _identity(p: Path) -> tuple[int, int]:
    st = p.stat()
    return st.st_dev, st.st_ino


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    write_bytes_atomic(path, text.encode("utf-8"))


def json_text(obj: Any) -> str:
    """``obj`` as deterministic, indented JSON (sorted keys) with a final newline: the form every JSON artifact is written in."""
    return json.dumps(obj, indent=2, sort_keys=True) + "\n"


def write_json_atomic(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as deterministic, indented JSON (sorted keys) atomically."""
    write_text_atomic(path, json_text(obj))


def read_json(path: str | os.PathLike, what: str, missing: str | None = None) -> Any:
    """Parse a JSON file; one-line ``QyoloError`` when it is missing (``missing`` overrides the message) or unreadable."""
    from .errors import QyoloError

    p = Path(path)
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise QyoloError(missing or f"{p}: no such file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise QyoloError(f"{p}: not a readable {what} ({type(exc).__name__})") from None


def sha256_bytes(data: bytes) -> str:
    """Hex SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file, streamed."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
