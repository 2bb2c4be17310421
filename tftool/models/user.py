"""Loading the user's own Python code: a file.py or an importable package.module (--model=
file.py:function builders, --custom_objects)."""
import os

from tftool import UserError


def user_module(where, flag, fix=""):
    """The user's Python code `where`: a file (file.py, relative to the current folder or
    absolute) executed as a module, or an importable package.module. `flag` ("--model=...")
    and `fix` go into the errors.
    Raises: UserError: a missing file, an import that fails (its first line)."""
    import importlib
    import importlib.util

    try:
        if where.endswith(".py"):
            path = os.path.abspath(os.path.expanduser(where))
            if not os.path.isfile(path):
                raise UserError(f"{flag}: no such file {path}{fix}")
            spec = importlib.util.spec_from_file_location(
                "tftool_user_" + os.path.basename(path)[:-3], path)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            return module
        return importlib.import_module(where)
    except UserError:
        raise
    except Exception as e:  # the user's code: name it in one line, no traceback
        first = (str(e).splitlines() or [""])[0]
        raise UserError(f"{flag}: importing {where} failed: {type(e).__name__}: "
                        f"{first}") from e
