"""What a new connector may be called: a lower-case Python identifier no connector or module uses yet."""

import importlib.util
import keyword
import re
import sys

from connectors.runtime import available

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")  # the SDK's rule for names in archives


def check_connector_name(name: str) -> str:
    """Return `name` if it can name a new connector; raise ValueError saying why not otherwise.

    It must be lower_snake_case (it names the module, the entry point and the system in archives),
    not a Python keyword, not a standard-library module (the test imports it by that name), not an
    installed connector (entry point group `dsar.connectors`), and not a module of `connectors`.
    """
    if not isinstance(name, str) or not _NAME.match(name) or not name.isidentifier():
        raise ValueError(f"{name!r} is not a valid connector name: use lower_snake_case, starting with a letter")
    if keyword.iskeyword(name) or keyword.issoftkeyword(name):
        raise ValueError(f"{name!r} is a Python keyword")
    if name in sys.stdlib_module_names:
        raise ValueError(f"{name!r} is a standard-library module: a connector of that name would shadow it")
    if name in available():
        raise ValueError(f"a connector named {name!r} is already installed")
    if importlib.util.find_spec(f"connectors.{name}") is not None:
        raise ValueError(f"connectors.{name} already exists")
    return name
