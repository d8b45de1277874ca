"""Every lesson's exercise checks; importing this package registers them all.

One module per lesson, named after the lesson's topic module
(``checks/processes.py`` checks the exercises of ``00_processes``). Modules
are found automatically: adding a lesson's checks needs no edit here.
"""
import importlib
import pkgutil

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
