"""The README's "Test your instrumentation offline" example runs as written."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).parents[2] / "README.md"


def test_readme_offline_instrumentation_example_runs(tmp_path: Path) -> None:
    section = README.read_text().split("## Test your instrumentation offline", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert code is not None
    script = tmp_path / "example.py"  # a user's script file, so the SDK can read its source as usual
    script.write_text(code[1])
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "checkout {order_id}" in done.stdout
