"""Runners execute the same stages: ``local`` in-process, ``ray`` on actor pools."""
