"""Errors a user can act on. Each message names the bad value and the fix."""


class RagQAError(Exception):
    """Base class: the CLI prints the message on one line and exits non-zero."""


class InputError(RagQAError):
    """A path, query or option that ragqa cannot use."""


class IndexMissingError(RagQAError):
    """No index where one was expected."""


class IndexCorruptError(RagQAError):
    """An index whose files do not match its manifest."""


class IndexMismatchError(RagQAError):
    """An index built with settings (format, encoder) that do not match."""


class ModelError(RagQAError):
    """A model directory that cannot be loaded."""


class IndexLockedError(RagQAError):
    """Another process is writing the same index."""


class MissingExtraError(RagQAError):
    """An optional part of ragqa used without its extra installed."""


def require_extra(extra: str, *modules: str, what: str) -> None:
    """Fail in one line, naming the extra to install, when ``modules`` are missing."""
    import importlib.util

    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise MissingExtraError(
            f"{what} needs {', '.join(missing)}, which is not installed: pip install 'ragqa[{extra}]'"
        )
