"""The one exception type for bad user input.

Library code raises :class:`InputError` with a one-line message that names the file
and the problem; the CLI turns it into exit code 2 without a traceback.
"""


class InputError(ValueError):
    """Bad user input (file, column, id, layer, model): the message says what to fix."""
