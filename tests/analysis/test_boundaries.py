"""The arrows between packages: analysis reads results tables only, and the results contract depends on nothing."""

from __future__ import annotations

import subprocess
import sys


def _modules_loaded_by(imports: str) -> list[str]:
    """Modules that importing ``imports`` (comma-separated) adds to a fresh interpreter."""
    probe = ("import sys; before = set(sys.modules);"
             f"import {imports};"
             "print(' '.join(sorted(set(sys.modules) - before)))")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return result.stdout.split()


def test_analysis_imports_no_training_code():
    loaded = _modules_loaded_by("analysis.report, analysis.study, analysis.figures, analysis.trials")
    forbidden = ("scaling", "model", "kernels", "torch", "triton", "ray")
    assert [m for m in loaded if m.split(".")[0] in forbidden] == []
    assert "core.results_schema" in loaded  # the contract is read from the one shared module


def test_the_results_contract_needs_only_the_standard_library():
    loaded = _modules_loaded_by("core.results_schema")
    outside = [m for m in loaded if m.split(".")[0] not in sys.stdlib_module_names and m.split(".")[0] != "core"]
    assert outside == []
    assert [m for m in loaded if m.startswith("core.")] == ["core.results_schema"]
