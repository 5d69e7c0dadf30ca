"""Steps per second of the studio's own fit (the child process, as a user runs it), read the
way the status bar reads it, at the default demo settings and at 128² with a 5,120-face
sphere; beside each, the same problem stepped headless by a Fitter in this process, in the
same run, as the baseline (the ratio is what the window, the child process and the frames
cost). Each case runs with the fit process on every core (the default) and on all but one (the
policy before), through ``DIBR_FIT_THREADS``.

    xvfb-run -a python benchmarks/studio_steps.py [--seconds 6]

Not a test: it asserts nothing. Prints the load average at the start and the end.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

CASES = (("demo (64², 1,280 faces)", 64, None), ("128², 5,120 faces", 128, 4))


def _gui_rate(app, resolution: int, subdivisions: int | None, seconds: float) -> float:
    from PyQt6.QtCore import QSettings

    from studio.model.session import Session
    from studio.qt.window import MainWindow

    with tempfile.TemporaryDirectory() as tmp:
        settings = QSettings(str(Path(tmp) / "settings.ini"), QSettings.Format.IniFormat)
        session = Session()
        win = MainWindow(session, settings=settings)
        win.load_demo()
        if subdivisions is not None:
            session.new_primitive("sphere", subdivisions)
        session.set_option(resolution=resolution)
        win.show()
        win.run()
        while win.step_count < 3:  # the fit process has started and stepped
            app.processEvents()
            time.sleep(0.005)
        s0, t0 = win.step_count, time.monotonic()
        while time.monotonic() - t0 < seconds:
            app.processEvents()
            time.sleep(0.005)
        s1, t1 = win.step_count, time.monotonic()
        shown = win.status_rate.text()
        win.pause()
        win.close()
    print(f"  status bar at the end: {shown}")
    return (s1 - s0) / (t1 - t0)


def _headless_rate(resolution: int, subdivisions: int | None, seconds: float) -> float:
    import torch

    import render_core as rc
    from studio.model.session import Session

    session = Session()
    session.load_demo()
    if subdivisions is not None:
        session.new_primitive("sphere", subdivisions)
    session.set_option(resolution=resolution)
    from studio.model.fitproc import fit_threads

    fitter = rc.Fitter(session.initial_mesh, session.targets, session.config)
    threads = torch.get_num_threads()
    torch.set_num_threads(fit_threads())  # the fit child's share
    try:
        for _ in range(3):
            fitter.step()
        n, t0 = 0, time.monotonic()
        while time.monotonic() - t0 < seconds:
            fitter.step()
            n += 1
        return n / (time.monotonic() - t0)
    finally:
        torch.set_num_threads(threads)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=6.0)
    args = ap.parse_args()

    from PyQt6.QtWidgets import QApplication

    from studio.qt.app import set_default_gl_format

    set_default_gl_format()
    app = QApplication.instance() or QApplication(sys.argv)
    print(f"load average at start: {os.getloadavg()[0]:.2f}, {os.cpu_count()} cores")
    cores = os.cpu_count() or 1
    policies = [("all cores", str(cores))]
    if cores > 1:
        policies.append(("cores - 1", str(cores - 1)))  # the policy before issue 14's last round
    print(f"{'case':26s} {'fit threads':>14s} {'studio steps/s':>15s} {'headless steps/s':>17s} "
          f"{'ratio':>6s}")
    for name, res, sub in CASES:
        for label, threads in policies:
            os.environ["DIBR_FIT_THREADS"] = threads  # read by the spawned fit process
            gui = _gui_rate(app, res, sub, args.seconds)
            head = _headless_rate(res, sub, args.seconds)
            print(f"{name:26s} {label + ' (' + threads + ')':>14s} {gui:15.1f} {head:17.1f} "
                  f"{gui / head:6.2f}", flush=True)
    print(f"load average at end: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
