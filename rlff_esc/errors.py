"""User-facing errors: the CLI prints their message (which names the file, line, field or setting)
and exits with status 2 instead of showing a traceback."""


class RlffError(Exception):
    """An error caused by input the user can fix (a file, a config value, an endpoint)."""


class DataError(RlffError):
    """A dataset record that cannot be read; the message names file, line and field."""

    def __init__(self, path, line: int | None, field: str | None, problem: str):
        self.path, self.line, self.field, self.problem = str(path), line, field, problem
        where = self.path + (f":{line}" if line is not None else "")
        what = f" field '{field}':" if field else ""
        super().__init__(f"{where}:{what} {problem}")


class ConfigError(RlffError):
    """A config file that does not validate; the message names each bad setting by its path."""


class BackendError(RlffError):
    """A model backend that cannot be reached or answers nothing usable."""
