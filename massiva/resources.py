"""Where the files massiva ships are: the shared templates and the example campaign.

The sources are the repository's top-level ``templates/`` and ``campaigns/example/``: a
source checkout and an editable install use them where they are. A wheel carries the same
folders inside the package, as ``massiva/shipped/templates`` and
``massiva/shipped/example`` (``package-dir`` in pyproject.toml). Nothing else in massiva
knows either place.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def _shipped(installed: str, source: str) -> Path:
    in_wheel = _PACKAGE / "shipped" / installed
    return in_wheel if in_wheel.is_dir() else _PACKAGE.parent / source


#: The shared templates: ``pec_base.html`` (the layout the example campaign extends) and
#: ``report.html`` (the HTML report's page).
TEMPLATES = _shipped("templates", "templates")
#: The example campaign, the one ``massiva demo`` sends and ``massiva init`` copies.
EXAMPLE_CAMPAIGN = _shipped("example", "campaigns/example")
