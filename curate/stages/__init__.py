"""Pipeline stages, one module per step (each a :class:`curate.stage.Stage`)."""
