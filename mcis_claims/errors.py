"""The few exception types a user can meet.

Every user mistake (an unknown model, a layer out of range, a corrupt file, no
network, an unwritable directory) raises a subclass of `McisError` whose message
is one line that names the bad value and says what to do. The pytest plugin
turns these into a one-line usage error instead of a traceback.
"""


class McisError(Exception):
    """Base class: a problem the user can fix, described in one line."""


class ModelLoadError(McisError):
    """A model name or path could not be resolved or loaded."""


class AssetError(McisError):
    """A registry-shipped asset (GGUF, corpus) could not be fetched or failed its checksum."""


class CorpusError(McisError):
    """A corpus is missing, empty or too short for the requested prompts."""


class SiteError(McisError):
    """A layer or site name does not exist in the model."""


class ReportError(McisError):
    """The report directory cannot be written."""


class InputError(McisError):
    """An argument has the wrong shape, dtype or value (e.g. NaNs)."""
