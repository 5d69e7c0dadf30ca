"""Autosave and crash recovery. No Qt: the window supplies the folder and drives the timer.

While the studio runs, its data folder holds ``running.json`` (a marker naming the process)
and ``autosave.zip`` (the session, saved every N seconds when it changed and on quit). A clean
exit removes the marker. If the next launch finds a marker whose process is gone, the last run
crashed or was killed, and :meth:`Autosaver.recoverable` says so: the window offers to open
``autosave.zip``.

Several studios may run at once. The first live one owns ``running.json``/``autosave.zip``;
one started while that owner is alive uses a pair of its own, ``running-<pid>.json`` and
``autosave-<pid>.zip``, so no two processes ever write the same file. A launch lists every
crashed instance's autosave (:meth:`Autosaver.crashed`); one it does not take over or discard
stays for the next launch. A clean exit from a pair of its own removes both files.

The folder is ``$DIBR_STUDIO_DATA`` when set (tests point it at a temporary folder), else the
one the caller passes (the platform's per-user application data folder).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sys
from pathlib import Path

import render_core as rc

from .session import Session

ENV_VAR = "DIBR_STUDIO_DATA"
AUTOSAVE_NAME = "autosave.zip"
MARKER_NAME = "running.json"
DEFAULT_INTERVAL = 60.0
"""Seconds between autosaves unless the user sets another interval."""

_OWN_MARKER = re.compile(r"running-(\d+)\.json")  # the marker of an instance's own pair
_CLAIM = re.compile(r"\.running\.(\d+)\.claim")  # a marker being claimed (see _claim)



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


def _owner(marker: Path) -> int | None:
    """The pid a marker names; -1 when it is damaged, None when there is no marker."""
    try:
        return int(json.loads(marker.read_text())["pid"])
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError):
        return -1  # a damaged marker is a crashed run too


def _gone(owner: int | None) -> bool:
    """True when a marker naming ``owner`` belongs to a run that crashed."""
    return owner is not None and (owner < 0 or not _alive(owner))


def _autosave_of(marker: Path) -> Path:
    m = _OWN_MARKER.fullmatch(marker.name)
    return marker.with_name(f"autosave-{m.group(1)}.zip" if m else AUTOSAVE_NAME)


def _marker_of(autosave: Path) -> Path:
    m = re.fullmatch(r"autosave-(\d+)\.zip", autosave.name)
    return autosave.with_name(f"running-{m.group(1)}.json" if m else MARKER_NAME)


def _remove_temps(autosave: Path) -> None:
    """Delete the temporary files of saves a crash interrupted (see ``rc.atomic_path``)."""
    for tmp in autosave.parent.glob(f".{autosave.stem}.*.tmp{autosave.suffix}"):
        with contextlib.suppress(OSError):
            tmp.unlink()


class Autosaver:
    """Saves ``session`` to this instance's autosave and keeps its running marker.

    Args:
        session: the session to save.
        folder: where the autosave and marker live (created on :meth:`start`).

    :attr:`path` and :attr:`marker` are ``autosave.zip`` and ``running.json`` until
    :meth:`start` finds them owned by another live studio, then this process's own pair.
    """

    def __init__(self, session: Session, folder: str | os.PathLike):
        self.session = session
        self.folder = Path(folder)
        self._saved_revision: int | None = None
        self._own_pair = False  # True: autosave-<pid>.zip, since another studio has the first
        self._started = False
        self._adopt: Path | None = None  # a crashed autosave recovered before start()

    @property
    def path(self) -> Path:
        return _autosave_of(self.marker)

    @property
    def marker(self) -> Path:
        name = f"running-{os.getpid()}.json" if self._own_pair else MARKER_NAME
        return self.folder / name

    def crashed(self) -> list[Path]:
        """The autosaves of runs that did not exit cleanly and are not running: the first
        pair's first, then the newest first."""
        found = []
        for marker in self.folder.glob("running*.json"):
            if marker.name != MARKER_NAME and not _OWN_MARKER.fullmatch(marker.name):
                continue
            autosave = _autosave_of(marker)
            if _gone(_owner(marker)) and autosave.is_file():
                found.append(autosave)

        def order(p: Path) -> tuple[bool, float]:
            try:
                mtime = p.stat().st_mtime
            except OSError:
                mtime = 0.0
            return p.name != AUTOSAVE_NAME, -mtime

        return sorted(found, key=order)

    def recoverable(self) -> bool:
        """True when a previous run left an autosave but no clean exit (and is not running)."""
        return bool(self.crashed())

    def start(self) -> None:
        """Claim an autosave for this process (call after asking about recovery, or before:
        the autosaves :meth:`crashed` lists stay until recovered, discarded or overwritten)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        first = self.folder / MARKER_NAME
        # A crashed first pair that is not the one being recovered stays for the next launch.
        keep = (self._adopt is not None and self._adopt != _autosave_of(first)
                and (self.folder / AUTOSAVE_NAME).is_file())
        self._own_pair = keep or not self._claim(first)
        if self._own_pair:
            rc.atomic_write_text(self.marker, json.dumps({"pid": os.getpid()}))
        self._started = True
        self._saved_revision = self.session.revision
        _remove_temps(self.path)  # saves a crash interrupted
        self._tidy()
        if self._adopt is not None:
            adopt, self._adopt = self._adopt, None
            self._take(adopt)

    def _claim(self, marker: Path) -> bool:
        """Make ``marker`` name this process unless a live process owns it; True if done.

        A hard link of a complete file creates the marker only where there is none, so two
        studios that start together cannot both take a free marker. A crashed owner's marker
        is replaced, then read back: of two studios taking it over at once, the last writes.
        """
        mine = os.getpid()
        claim = marker.with_name(f".{marker.stem}.{mine}.claim")
        claim.write_text(json.dumps({"pid": mine}))
        try:
            try:
                os.link(claim, marker)
                return True
            except FileExistsError:
                pass
            except OSError:  # no hard links on this filesystem
                if not marker.exists():
                    os.replace(claim, marker)
                    return _owner(marker) == mine
            owner = _owner(marker)
            if owner is not None and owner != mine and not _gone(owner):
                return False
            os.replace(claim, marker)
            return _owner(marker) == mine
        finally:
            with contextlib.suppress(OSError):
                claim.unlink()

    def _tidy(self) -> None:
        """Remove what crashed runs left besides their autosaves: interrupted saves and
        claims, and the markers of runs that crashed before their first autosave."""
        for marker in self.folder.glob("running-*.json"):
            if _OWN_MARKER.fullmatch(marker.name) and _gone(_owner(marker)):
                autosave = _autosave_of(marker)
                _remove_temps(autosave)
                if not autosave.exists():
                    with contextlib.suppress(OSError):
                        marker.unlink()
        first = self.folder / MARKER_NAME
        if first != self.marker and _gone(_owner(first)):
            _remove_temps(self.folder / AUTOSAVE_NAME)
        for claim in self.folder.glob(".running.*.claim"):
            m = _CLAIM.fullmatch(claim.name)
            if m and not _alive(int(m.group(1))):
                with contextlib.suppress(OSError):
                    claim.unlink()

    def _crashed_pair(self, autosave: Path) -> Path:
        """The marker of ``autosave`` in this folder, checked to be a crashed run's."""
        autosave = Path(autosave)
        marker = _marker_of(autosave)
        if autosave.parent != self.folder or not _gone(_owner(marker)):
            raise ValueError(f"{autosave} is not the autosave of a crashed run")
        return marker

    def _take(self, autosave: Path) -> None:
        """Make a crashed run's autosave this process's own (it was recovered)."""
        if autosave == self.path:
            return
        marker = self._crashed_pair(autosave)
        os.replace(autosave, self.path)
        _remove_temps(autosave)
        with contextlib.suppress(OSError):
            marker.unlink()

    def discard(self, autosave: str | os.PathLike) -> None:
        """Delete a crashed run's autosave (the user declined it); raises ValueError when it
        is not one."""
        autosave = Path(autosave)
        if self._started and autosave == self.path:  # the crashed first pair, now ours
            with contextlib.suppress(FileNotFoundError):
                autosave.unlink()
            return
        marker = self._crashed_pair(autosave)
        with contextlib.suppress(FileNotFoundError):
            autosave.unlink()
        _remove_temps(autosave)
        with contextlib.suppress(FileNotFoundError):
            marker.unlink()

    def recover(self, autosave: str | os.PathLike | None = None) -> None:
        """Open a crashed run's autosave, by default :attr:`path` (raises like
        :meth:`Session.open`). Another pair's autosave becomes this process's own."""
        autosave = self.path if autosave is None else Path(autosave)
        if autosave != self.path:
            self._crashed_pair(autosave)
        self.session.open(autosave)
        self._saved_revision = self.session.revision
        if autosave == self.path:
            return
        if self._started:
            self._take(autosave)
        else:
            self._adopt = autosave

    def save(self, force: bool = False) -> Path | None:
        """Save when the session changed since the last autosave (or ``force``); returns the
        path written, or None when there was nothing to save."""
        s = self.session
        if s.initial_mesh is None or (not force and s.revision == self._saved_revision):
            return None
        revision = s.revision
        self.folder.mkdir(parents=True, exist_ok=True)
        s.save(self.path)  # the fit's checkpoint, wherever it runs
        self._saved_revision = revision
        return self.path

    def finish(self) -> None:
        """A clean exit: save one last time, then remove the marker (and, from a pair of this
        process's own, the autosave: nothing is left to recover)."""
        try:
            self.save()
        finally:
            try:
                self.marker.unlink()
            except OSError:
                return
            if self._own_pair:
                with contextlib.suppress(OSError):
                    self.path.unlink()
