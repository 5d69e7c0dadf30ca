"""The Style menu (analytic shadings and RenderNet styles) and the RenderNet camera fit, in Qt.

An analytic shading is a fit setting: choosing one sets the session's shading, as the control
panel does. A RenderNet style only changes what the render panel shows: the current mesh drawn
by the network from the selected view, while the analytic fit goes on untouched. The network
runs in a :class:`NeuralRenderThread` (latest request wins), so the window never waits for it;
one forward gives every style and voxel grids are cached per mesh version, so switching styles
on the frame shown is immediate.

"Optimise ▸ Fit camera and light with RenderNet" fits the selected target's camera (and the
light, for lit styles) through the network in a child process (:class:`neural.CameraFitJob`),
with a progress dialog that can cancel it, and applies the result to the session.
"""

from __future__ import annotations

import threading

import numpy as np
from PyQt6.QtCore import QObject, QThread, QTimer, pyqtSignal
from PyQt6.QtGui import QAction, QActionGroup
from PyQt6.QtWidgets import QProgressDialog

import render_core as rc

from ..model import neural, neural_camera

SHADING_LABELS = {"vertex_color": "Vertex colour", "texture": "Texture",
                  "lambertian": "Lambertian", "phong": "Phong", "sh": "Spherical harmonics"}
NEURAL_LABELS = {"phong": "RenderNet Phong", "contour": "RenderNet contour",
                 "toon": "RenderNet toon", "ao": "RenderNet ambient occlusion"}


class NeuralRenderThread(QThread):
    """Renders RenderNet images off the GUI thread. :meth:`request` replaces any request not
    yet started; ``rendered(token, image, alpha)`` or ``failed(token, message)`` answers."""

    rendered = pyqtSignal(int, object, object)
    failed = pyqtSignal(int, str)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("rendernet")
        self.shader = neural.NeuralShader()
        self._cond = threading.Condition()
        self._request: tuple | None = None
        self._stop = False

    def request(self, token: int, vertices, faces, camera, style: str, size, light) -> None:
        with self._cond:
            self._request = (token, vertices, faces, camera, style, size, light)
            self._cond.notify()

    def stop(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify()
        self.wait(10000)

    def run(self) -> None:  # noqa: D102 (QThread body)
        while True:
            with self._cond:
                while self._request is None and not self._stop:
                    self._cond.wait()
                if self._stop:
                    return
                req, self._request = self._request, None
            token, v, f, camera, style, size, light = req
            try:
                img = self.shader.image(v, f, camera, style, size, light)
                alpha = self.shader.image(v, f, camera, "mask", size, light)[..., 0]
                self.rendered.emit(token, img, alpha)
            except Exception as e:  # e.g. missing weights: one line to the window
                self.failed.emit(token, f"RenderNet {style}: {e}")


class StyleMenu(QObject):
    """Owns the Style menu, the neural render thread and the RenderNet camera fit of a
    :class:`~studio.qt.window.MainWindow`. The window hands it every frame
    (:meth:`show_frame`) and calls :meth:`shutdown` when it closes."""

    style_shown = pyqtSignal(str)  # the style now in the render panel ("lambertian", "ao", …)
    fit_finished = pyqtSignal(object)  # neural.CameraFit, after it was applied

    fit_options: dict = {}
    """Extra ``fit_pose`` arguments for the camera fit (tests shrink the search)."""

    def __init__(self, window):
        super().__init__(window)
        self.window = window
        self.session = window.session
        self.neural_style: str | None = None  # None: the analytic render is shown
        self.shown_style = ""
        self.job: neural.CameraFitJob | None = None
        self._job_target = 0
        self._snap: dict | None = None
        self._token = 0
        self._shading = self.session.config.shading
        self.thread = NeuralRenderThread()
        self.thread.rendered.connect(self._on_rendered)
        self.thread.failed.connect(self._on_failed)
        self.thread.start()
        self._timer = QTimer(self)
        self._timer.setInterval(100)
        self._timer.timeout.connect(self._poll_job)
        self.progress: QProgressDialog | None = None
        self.actions: dict[str, QAction] = {}
        self.session.subscribe(self._on_session)

    # -- menus ---------------------------------------------------------------------------------

    def build(self, menubar) -> None:
        """Add the Style menu to ``menubar``."""
        menu = menubar.addMenu("St&yle")
        group = QActionGroup(self)
        group.setExclusive(True)
        menu.addSection("Analytic (the fit's shading)")
        for name in rc.SHADINGS:
            self._add(menu, group, name, SHADING_LABELS.get(name, name),
                      lambda n=name: self.set_style(n))
        menu.addSection("RenderNet (display only)")
        for name in neural.NEURAL_STYLES:
            self._add(menu, group, f"rendernet:{name}", NEURAL_LABELS[name],
                      lambda n=name: self.set_style(f"rendernet:{n}"))
        self._check()

    def _add(self, menu, group, key: str, text: str, slot) -> None:
        a = QAction(text, self)
        a.setCheckable(True)
        a.triggered.connect(lambda checked=False: slot())
        group.addAction(a)
        menu.addAction(a)
        self.actions[key] = a

    def add_fit_action(self, menu) -> QAction:
        """Add "Fit camera and light with RenderNet…" to ``menu`` (the Optimise menu)."""
        a = QAction("Fit camera and light with &RenderNet", self)
        a.setToolTip("Recover the selected target's camera (and the light) through the "
                     "RenderNet network, from the current mesh")
        a.triggered.connect(lambda checked=False: self.fit_camera())
        menu.addAction(a)
        return a

    def _check(self) -> None:
        key = f"rendernet:{self.neural_style}" if self.neural_style else \
            self.session.config.shading
        if key in self.actions:
            self.actions[key].setChecked(True)

    # -- styles --------------------------------------------------------------------------------

    def set_style(self, style: str) -> None:
        """``"rendernet:<style>"`` shows that RenderNet style; an analytic shading name sets
        the fit's shading and shows its render."""
        if style.startswith("rendernet:"):
            name = style.split(":", 1)[1]
            if name not in neural.NEURAL_STYLES:
                raise ValueError(f"unknown RenderNet style {name!r}")
            self.neural_style = name
        else:
            self.neural_style = None
            if style != self.session.config.shading:
                self.window._guard(self.session.set_option, shading=style)
        self._check()
        if self._snap is not None:
            self.show_frame(self._snap)

    def show_frame(self, snap: dict) -> None:
        """Show a fit frame: the analytic render, or a RenderNet image of its mesh."""
        self._snap = snap
        images = self.window.images
        if self.neural_style is None:
            images.set_frame(snap["render"], snap["target"], snap["alpha"], snap["mask"])
            self._shown(self.session.config.shading, "Render")
            return
        mesh, (view, fov, _aspect) = snap["mesh"], snap["cameras"][snap["view"]]
        size = snap["render"].shape[:2]
        i = snap["view"]
        target = self.session.targets[i] if 0 <= i < len(self.session.targets) else None
        if target is not None and not target.is_orbit:  # the registered camera itself
            camera = neural_camera.frame_view(view, fov, target, size)
        else:
            camera = (*neural.orbit_of_view(view), fov)
        lit = rc.light_kind(self.session.config.shading) == "directional"
        light = snap["light"] if lit else None
        self._token += 1
        self.thread.request(self._token, mesh["vertices"], mesh["faces"], camera,
                            self.neural_style, size, light)

    def _on_rendered(self, token: int, img: np.ndarray, alpha: np.ndarray) -> None:
        if token != self._token or self.neural_style is None or self._snap is None:
            return  # a newer frame or style was asked for meanwhile
        s = self._snap
        self.window.images.set_frame(img, s["target"], alpha, s["mask"])
        self._shown(self.neural_style, NEURAL_LABELS[self.neural_style])

    def _on_failed(self, token: int, message: str) -> None:
        if token == self._token:
            self.neural_style = None
            self._check()
            self.window.show_error(message)
            if self._snap is not None:
                self.show_frame(self._snap)

    def _shown(self, style: str, title: str) -> None:
        label = self.window.images.glw.ci.getItem(0, 0)  # the render panel's title
        if label is not None:
            label.setText(title)
        if style != self.shown_style:
            self.shown_style = style
            self.style_shown.emit(style)

    def _on_session(self, event: str) -> None:
        shading = self.session.config.shading
        if shading != self._shading:  # changed elsewhere (the control panel): show it
            self._shading = shading
            self.neural_style = None
        self._check()

    # -- camera fit ----------------------------------------------------------------------------

    def fit_camera(self, index: int | None = None) -> bool:
        """Start the RenderNet fit of target ``index`` (default: the selected view) in the
        style shown (Phong when an analytic shading is shown). False if it could not start."""
        if self.job is not None:
            self.window.show_error("A RenderNet camera fit is already running.")
            return False
        if not self.session.ready:
            self.window.show_error("Load a mesh and at least one target image first.")
            return False
        index = self.window.view_index if index is None else index
        style = self.neural_style or "phong"
        try:
            job = neural.camera_fit_job(self.session, index, style)
        except (ValueError, RuntimeError) as e:
            self.window.show_error(str(e))
            return False
        self.job, self._job_target = neural.CameraFitJob(job, **self.fit_options), index
        name = self.session.targets[index].name or f"view {index + 1}"
        self.progress = QProgressDialog(f"Fitting the camera of {name} through RenderNet "
                                        f"({style})…", "Cancel", 0, 1000, self.window)
        self.progress.setWindowTitle("RenderNet camera fit")
        self.progress.setMinimumDuration(0)
        self.progress.setAutoClose(False)
        self.progress.setAutoReset(False)
        self.progress.canceled.connect(self.cancel_fit)
        self.progress.show()
        self._timer.start()
        return True

    def cancel_fit(self) -> None:
        if self.job is not None:
            self.job.cancel()
            self._end_fit()

    def _poll_job(self) -> None:
        job = self.job
        if job is None:
            return
        finished = job.poll()
        done, total, loss = job.progress
        if self.progress is not None:
            self.progress.setValue(int(1000 * done / max(total, 1)))
            if done:
                self.progress.setLabelText(f"RenderNet camera fit: step {done} of {total}, "
                                           f"image error {loss:.4f}")
        if not finished:
            return
        self._end_fit()
        if job.error is not None:
            self.window.show_error(f"RenderNet camera fit failed: {job.error}")
            return
        fit = job.result
        ok = self.window._guard(neural.apply_camera_fit, self.session, self._job_target, fit)
        if ok:
            light = "" if fit.light is None else \
                ", light ({:.2f}, {:.2f}, {:.2f})".format(*fit.light)
            self.window.statusBar().showMessage(
                f"RenderNet fit: azimuth {fit.azimuth:.1f}°, elevation {fit.elevation:.1f}°, "
                f"distance {fit.distance:.2f}{light}", 15000)
            self.fit_finished.emit(fit)

    def _end_fit(self) -> None:
        self._timer.stop()
        self.job = None
        if self.progress is not None:
            self.progress.canceled.disconnect(self.cancel_fit)
            self.progress.close()
            self.progress.deleteLater()
            self.progress = None

    def shutdown(self) -> None:
        """Stop the render thread and any camera fit (the window is closing)."""
        if self.job is not None:
            self.job.cancel()
            self._end_fit()
        self.thread.stop()
