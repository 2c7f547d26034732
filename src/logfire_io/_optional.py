"""Optional dependencies: imported when first needed, with an error that names the extra to install."""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["optional_import"]


def optional_import(module: str, *, needed_by: str, extra: str) -> Any:
    """``module`` imported, or an ImportError saying which ``logfire-io`` extra brings it."""
    try:
        return importlib.import_module(module)
    except ImportError:  # pragma: no cover - exercised only without the extra
        msg = f"{needed_by} needs {module.split('.')[0]}: pip install 'logfire-io[{extra}]'"
        raise ImportError(msg) from None
