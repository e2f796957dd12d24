"""A malicious pickle payload shared by the tests of untrusted files."""


class Exploit:
    """Unpickling this calls os.system, which creates a marker file."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os
        return os.system, (f"touch {self.marker}",)
