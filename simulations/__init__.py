"""Running and judging: the ``fedsynth`` command, the simulation runner, metrics and reports."""
