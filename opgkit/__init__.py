"""Ape toolkit for the OPG accountable-AI-execution protocol."""

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
"""The project checkout this package was installed from (editable install)."""
