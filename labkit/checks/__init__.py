"""Every lesson's exercise checks; importing this package registers them all.

One module per lesson, named after the lesson's topic module
(``checks/processes.py`` checks the exercises of ``00_processes``).
"""
from . import processes  # noqa: F401
