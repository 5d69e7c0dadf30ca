"""dibr-studio: the Qt application for live inverse rendering on top of render_core."""

import os

# Passive OpenMP waits, before anything loads torch (see render_core/_omp.py): spinning
# intra-op threads stall a fit on a machine whose cores other processes share.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
