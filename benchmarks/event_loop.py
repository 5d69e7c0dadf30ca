"""Event-loop lateness of the studio window while a fit runs, against the same window idle.

    xvfb-run -a python benchmarks/event_loop.py [--seconds 4] [--resolution 64]

A 10 ms QTimer ticks first with the window idle, then while the demo fit runs; each tick's
lateness is how much longer than 10 ms it came after the previous one. Prints the median and
p95 of both phases and their ratio (running / idle), measured in the same run on the same
machine, so a busy machine moves both. Not a test: it asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _measure(app, seconds: float) -> list[float]:
    from PyQt6.QtCore import QElapsedTimer, QEventLoop, QTimer

    clock = QElapsedTimer()
    lateness: list[float] = []
    last = [0]

    def tick():
        now = clock.elapsed()
        lateness.append(max(0, now - last[0] - 10))
        last[0] = now

    timer = QTimer()
    timer.setInterval(10)
    timer.timeout.connect(tick)
    loop = QEventLoop()
    QTimer.singleShot(int(seconds * 1000), loop.quit)
    clock.start()
    timer.start()
    loop.exec()
    timer.stop()
    return lateness[1:]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--resolution", type=int, default=64)
    ap.add_argument("--fit-threads", type=int, default=None,
                    help="the fit process's threads (DIBR_FIT_THREADS; default: its own choice)")
    args = ap.parse_args()
    if args.fit_threads:
        os.environ["DIBR_FIT_THREADS"] = str(args.fit_threads)  # read by the spawned fit

    from PyQt6.QtCore import QSettings
    from PyQt6.QtWidgets import QApplication

    from studio.model.session import Session
    from studio.qt.window import MainWindow

    app = QApplication.instance() or QApplication(sys.argv)
    with tempfile.TemporaryDirectory() as tmp:
        settings = QSettings(str(Path(tmp) / "settings.ini"), QSettings.Format.IniFormat)
        session = Session()
        win = MainWindow(session, settings=settings)
        win.load_demo()
        session.set_option(resolution=args.resolution)
        win.show()
        idle = _measure(app, args.seconds)
        win.run()
        while win.step_count < 2:  # the fit process has started and stepped
            app.processEvents()
        before = win.step_count
        running = _measure(app, args.seconds)
        steps = win.step_count - before
        win.pause()
        win.close()
    for name, values in (("idle", idle), ("running", running)):
        print(f"{name:8s} ticks {len(values):5d}  median {np.median(values):6.1f} ms  "
              f"p95 {np.percentile(values, 95):6.1f} ms")
    ratio = (np.percentile(running, 95) + 1.0) / (np.percentile(idle, 95) + 1.0)
    from studio.model.fitproc import fit_threads

    print(f"p95 lateness running / idle (each +1 ms): {ratio:.2f}; {steps} steps while running "
          f"(fit threads {fit_threads()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
