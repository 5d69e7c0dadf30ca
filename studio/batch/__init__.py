"""Many fits at once: ``dibr-studio batch`` / :func:`run` over a manifest, on Ray. No Qt.

- :mod:`~studio.batch.manifest`: the manifest (one row per fit), checked whole before a run.
- :mod:`~studio.batch.layout`: a manifest from a folder layout (``DIR/<item>/*.png``).
- :mod:`~studio.batch.worker`: one fit in a Ray worker, the code of ``dibr-studio fit``.
- :mod:`~studio.batch.run`: the driver (Ray tasks, retries, atomic results, resume).
- :mod:`~studio.batch.report`: progress bar, summary.csv/json, report.html.

Ray is imported only when a batch runs (the ``batch`` extra).
"""

from .manifest import FitRow, ManifestError, load, parse
from .run import BatchResult, run

__all__ = ["BatchResult", "FitRow", "ManifestError", "load", "parse", "run"]
