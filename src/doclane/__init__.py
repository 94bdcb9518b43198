"""doclane: chat with your documents."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("doclane")  # the one version source is pyproject.toml
except PackageNotFoundError:  # a source tree on sys.path that was never installed
    __version__ = "0+unknown"
