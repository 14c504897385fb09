"""The tool's version, and the ``--version`` option every command line shares.

Place in the data flow: beside the command lines. The version is the installed distribution's
(`importlib.metadata`); run from a checkout that is not installed, it is the package's own
`optimizer.__version__`, which is also where the build reads it from (pyproject's dynamic
version), so the two never disagree.
"""

from __future__ import annotations

import argparse
from importlib import metadata

import optimizer

DISTRIBUTION = "serving-optimizer"


def package_version() -> str:
    """The installed version of serving-optimizer, else the checkout's own."""
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return optimizer.__version__


def add_version_argument(parser: argparse.ArgumentParser) -> None:
    """``--version``: print ``<prog> <version>`` and exit 0."""
    parser.add_argument("--version", action="version", version=f"%(prog)s {package_version()}")
