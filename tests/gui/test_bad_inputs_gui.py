"""Every file of the bad-input corpus, opened in the main window: an error dialog naming the
file, and the session's mesh and targets (and the recent-files list) left as they were.

One window serves the whole corpus (building one takes seconds here), so each case also
checks that the previous cases left nothing behind."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the corpus lives in tests/
from bad_input_corpus import BAD_IMAGES, BAD_MESHES, build  # noqa: E402


@pytest.fixture(scope="module")
def corpus_window(qapp, tmp_path_factory):
    """A main window whose session holds an icosphere and one 16x16 target."""
    from PyQt6.QtCore import QSettings

    from studio.model.session import Session
    from studio.qt.window import MainWindow

    folder = tmp_path_factory.mktemp("corpus_window")
    img = np.zeros((16, 16, 4), np.uint8)
    img[4:12, 4:12] = (200, 90, 40, 255)
    Image.fromarray(img).save(folder / "target.png")
    session = Session()
    session.new_primitive("sphere", 1)
    session.add_target(folder / "target.png", 0.0, 0.0, 3.0)
    settings = QSettings(str(folder / "settings.ini"), QSettings.Format.IniFormat)
    win = MainWindow(session, settings=settings)
    win.show()
    yield win
    win.worker.pause()
    win.close()
    # Delete the window only once its worker thread has ended (its fit process may still be
    # starting on a busy machine), or the thread would outlive the objects it reports to.
    deadline = time.monotonic() + 60
    while not win.worker_thread.thread.isFinished() and time.monotonic() < deadline:
        qapp.processEvents()
        time.sleep(0.05)
    win.deleteLater()
    qapp.processEvents()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("case", sorted(BAD_MESHES) + sorted(BAD_IMAGES))
def test_bad_file_shows_a_dialog_and_keeps_the_session(case, corpus_window, qtbot, tmp_path,
                                                       monkeypatch):
    window = corpus_window
    shown: list[str] = []
    monkeypatch.setattr("studio.qt.window.QMessageBox.critical",
                        lambda parent, title, text: shown.append(text))
    s = window.session
    mesh, targets, generation = s.initial_mesh, list(s.targets), s.generation
    assert s.mesh_name == "sphere (1)" and len(targets) == 1
    recent = window.recent_files()
    path = build(tmp_path, case)
    if case in BAD_MESHES:
        assert not window.open_mesh(path)
        words = BAD_MESHES[case][1]
    else:
        assert not window.add_targets([path], [(0.0, 0.0, 3.0, 60.0)])
        words = BAD_IMAGES[case][1]
    assert len(shown) == 1 and shown[0] == window.last_error
    assert "\n" not in shown[0] and path.name in shown[0]
    assert all(w in shown[0] for w in words), shown[0]
    assert s.initial_mesh is mesh and s.targets == targets and s.generation == generation
    assert window.recent_files() == recent
    if case in BAD_MESHES:  # a dropped file takes the same path
        window.open_paths([str(path)])
        assert len(shown) == 2 and s.initial_mesh is mesh
