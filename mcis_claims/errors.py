"""The few exception types a user can meet.

Every user mistake (an unknown model, a layer out of range, a corrupt file, no
network, an unwritable directory) raises a subclass of `McisError` whose message
is one line that names the bad value and says what to do. The pytest plugin
turns these into a one-line usage error instead of a traceback.

Exit codes of `pytest claims/` (0-5 are pytest's own; 1 stays "a claim is refuted"):
an option that is wrong on its face (found before any model loads) is pytest's usage
error, 4; a bad input found while the run works (an empty corpus, an SAE with NaN
weights, a model file that does not load) stops the run with EXIT_INPUT_ERROR, so a
script can tell "the data refute the claim" from "the run could not judge it".
"""

EXIT_INPUT_ERROR = 6  # a McisError raised while a cell ran; documented in the README


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
