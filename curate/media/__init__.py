"""Media I/O: opening sources (local or fsspec), the streaming decode, probing."""
