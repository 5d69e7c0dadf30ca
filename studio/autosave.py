"""Autosave and crash recovery. No Qt: the window supplies the folder and drives the timer.

While the studio runs, its data folder holds ``running.json`` (a marker naming the process)
and ``autosave.zip`` (the session, saved every N seconds when it changed and on quit). A clean
exit removes the marker. If the next launch finds a marker whose process is gone, the last run
crashed or was killed, and :meth:`Autosaver.recoverable` says so: the window offers to open
``autosave.zip``.

The folder is ``$DIBR_STUDIO_DATA`` when set (tests point it at a temporary folder), else the
one the caller passes (the platform's per-user application data folder).
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path

import render_core as rc

from .session import Session

ENV_VAR = "DIBR_STUDIO_DATA"
AUTOSAVE_NAME = "autosave.zip"
MARKER_NAME = "running.json"
DEFAULT_INTERVAL = 60.0
"""Seconds between autosaves unless the user sets another interval."""

Fetch = Callable[[], "tuple[int, dict, list[dict]] | None"]


def data_dir(default: str | os.PathLike | None = None) -> Path:
    """``$DIBR_STUDIO_DATA``, else ``default``, else ``~/.local/share/dibr-studio``."""
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env)
    if default:
        return Path(default)
    return Path.home() / ".local" / "share" / "dibr-studio"


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    if sys.platform == "win32":  # os.kill would terminate it there; assume it is gone
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    except OSError:
        return False
    return True


class Autosaver:
    """Saves ``session`` to ``folder/autosave.zip`` and keeps the running marker.

    Args:
        session: the session to save.
        folder: where the autosave and marker live (created on :meth:`start`).
        fetch: returns ``(generation, checkpoint, history)`` of a fit that runs elsewhere
            (:meth:`FitWorker.fetch_checkpoint`), so the autosave has the Adam moments; by
            default the session's own fit.
    """

    def __init__(self, session: Session, folder: str | os.PathLike, fetch: Fetch | None = None):
        self.session = session
        self.folder = Path(folder)
        self.fetch = fetch
        self._saved_revision: int | None = None

    @property
    def path(self) -> Path:
        return self.folder / AUTOSAVE_NAME

    @property
    def marker(self) -> Path:
        return self.folder / MARKER_NAME

    def recoverable(self) -> bool:
        """True when a previous run left an autosave but no clean exit (and is not running)."""
        try:
            info = json.loads(self.marker.read_text())
            pid = int(info["pid"])
        except FileNotFoundError:
            return False
        except (OSError, ValueError, KeyError, TypeError):
            pid = -1  # a damaged marker is a crashed run too
        return self.path.is_file() and (pid < 0 or not _alive(pid))

    def start(self) -> None:
        """Claim the folder for this process (call after asking about recovery)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        rc.atomic_write_text(self.marker, json.dumps({"pid": os.getpid()}))
        self._saved_revision = self.session.revision
        stem, suffix = Path(AUTOSAVE_NAME).stem, Path(AUTOSAVE_NAME).suffix
        for tmp in self.folder.glob(f".{stem}.*.tmp{suffix}"):  # saves a crash interrupted
            with contextlib.suppress(OSError):
                tmp.unlink()

    def recover(self) -> None:
        """Open the autosaved session (raises like :meth:`Session.open`)."""
        self.session.open(self.path)
        self._saved_revision = self.session.revision

    def save(self, force: bool = False) -> Path | None:
        """Save when the session changed since the last autosave (or ``force``); returns the
        path written, or None when there was nothing to save."""
        s = self.session
        if s.initial_mesh is None or (not force and s.revision == self._saved_revision):
            return None
        revision = s.revision
        checkpoint = history = None
        if self.fetch is not None and s.ready:
            got = self.fetch()
            if got is not None and got[0] == s.generation:
                _, checkpoint, history = got
        self.folder.mkdir(parents=True, exist_ok=True)
        s.save(self.path, checkpoint, history)
        self._saved_revision = revision
        return self.path

    def finish(self) -> None:
        """A clean exit: save one last time, then remove the marker."""
        try:
            self.save()
        finally:
            with contextlib.suppress(OSError):
                self.marker.unlink()
