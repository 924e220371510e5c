"""The one error type of generation: bad input, named with the file and the problem."""
from __future__ import annotations


class GenerationError(ValueError):
    """Input that cannot be generated from (bad video, LRC, language, duration, checkpoint).

    `error_class` is a short machine name (batch mode records `failed:generate:<class>`).
    """

    def __init__(self, error_class: str, message: str):
        super().__init__(message)
        self.error_class = error_class
        self.message = message
