"""analysis reads results tables only: importing it must not pull in training, model or kernel code."""

from __future__ import annotations

import subprocess
import sys


def test_analysis_imports_no_training_code():
    probe = (
        "import sys, analysis.report, analysis.study, analysis.figures;"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'model', 'kernels', 'triton', 'ray')"
        " or (m.startswith('scaling.') and m != 'core.errors'));"
        "print(','.join(bad))"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == ""
