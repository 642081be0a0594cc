"""The output contract: Parquet shards, the ledger, the commit protocol and the manifest.

The driver uses :class:`OutputStore`; readers use ``manifest.json`` or, after a
clean close, plain globs of ``clips/*.parquet``. See :mod:`curate.output.store`.
"""

from curate.output.lock import LockedError
from curate.output.shards import TABLES
from curate.output.store import OutputStore, new_run_id

__all__ = ["LockedError", "OutputStore", "TABLES", "new_run_id"]
