"""The one jinja environment every page grader writes is rendered with (reports, class report, server pages).

Templates are searched in ``$GRADER_TEMPLATES`` first, then the packaged defaults, so a course restyles any
page by dropping a file of the same name there. Autoescaping is always on: student output and names are text,
never markup. jinja2 is imported on first use, so importing this module costs nothing.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from grader.paths import templates_root

if TYPE_CHECKING:
    import jinja2


def environment() -> jinja2.Environment:
    import jinja2

    search = [p for p in (os.environ.get("GRADER_TEMPLATES"), str(templates_root())) if p]
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(search), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["sig"] = significant
    return env


def render(template: str, **values: Any) -> str:
    """``template`` (a file name in the search path) rendered with ``values``."""
    return environment().get_template(template).render(**values)


def significant(value: Any, digits: int = 4) -> Any:
    """Floats to a few significant digits for tables; anything else unchanged."""
    return f"{value:.{digits}g}" if isinstance(value, float) else value
