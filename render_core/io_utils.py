"""Atomic file writes: a reader never sees a half-written export or saved session.

Every file is written to a temporary file in the destination's directory (same filesystem, so
the final ``os.replace`` is an atomic rename) and only then moved over the destination. If
writing fails, the temporary file is removed and any existing destination is left untouched.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path


def _reserve_temp(path: Path) -> Path:
    """Create an empty, uniquely named temporary file beside ``path`` and return its path.

    The name keeps ``path``'s suffix so writers that pick a format from the extension (PIL,
    trimesh, numpy) still do the right thing. ``O_EXCL`` with mode 0o666 gives the file the
    same permissions (through the umask) as a normally created one, unlike ``mkstemp``'s 0o600.
    """
    for _ in range(100):
        tmp = path.with_name(f".{path.stem}.{secrets.token_hex(4)}.tmp{path.suffix}")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        os.close(fd)
        return tmp
    raise FileExistsError(f"could not create a temporary file beside {path}")


def _fsync_file(path: Path) -> None:
    # Flush the data before the rename so a crash cannot leave a renamed but empty file (and,
    # called on a directory, flush the rename). Best effort: some platforms/filesystems refuse
    # fsync on a read-only descriptor, and Windows cannot open a directory.
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Context manager yielding a temporary path to write instead of ``path``.

    On a normal exit the temporary file is moved over ``path``; on an exception it is deleted,
    ``path`` keeps its previous contents, and the exception propagates. The directory of
    ``path`` must exist.

    Example::

        with atomic_path("out/texture.png") as tmp:
            image.save(tmp)
    """
    path = Path(path)
    tmp = _reserve_temp(path)
    try:
        yield tmp
        _fsync_file(tmp)
        os.replace(tmp, path)
        _fsync_file(path.parent)  # the rename itself survives a power cut (POSIX; best effort)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (see ``atomic_path``)."""
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        fh.write(data)


def atomic_write_text(path: str | os.PathLike, text: str, encoding: str = "utf-8") -> None:
    """Write ``text`` to ``path`` atomically, with ``\\n`` line endings on every platform."""
    atomic_write_bytes(path, text.encode(encoding))
