"""The native backends that every native-vs-torch test, gradcheck, determinism test and
Figure-2 fit runs on (the ``native_backend`` fixture of conftest.py, or a parametrize list).

The cuda case is skipped only when this machine has no GPU; where one exists it runs, and a
CUDA extension that fails to build is a failure, as the cpu one is. ``-m cuda`` selects exactly
the cuda cases (scripts/gpu_check.sh runs those on a GPU machine).
"""

import pytest
import torch

NATIVE_BACKENDS = [
    "cpu",
    pytest.param(
        "cuda",
        marks=[
            pytest.mark.cuda,
            pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device"),
        ],
    ),
]
