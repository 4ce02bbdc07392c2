"""Errors the command-line front ends report as one line with exit status 2."""


class InputError(ValueError):
  """Bad user input: a missing or unreadable file, folder, image or stream."""


def require_extra(extra: str, *modules: str) -> None:
  """Refuses, in one line, a command whose optional packages are missing:
  the ``extra`` of pyproject.toml (``pip install -e '.[serve]'``) that
  installs them.  Imports them, as the command would next.

  Raises:
    InputError: one of ``modules`` cannot be imported.
  """
  import importlib
  missing = []
  for module in modules:
    try:
      importlib.import_module(module)
    except ImportError:
      missing.append(module)
  if missing:
    raise InputError(f"{' and '.join(missing)} not installed: pip install -e "
                     f"'.[{extra}]' in the clone (requirements.txt installs "
                     "every extra)")
