"""The annotator review loop: a web app over the committed shards, a decisions database, and commands
that apply decisions as a new shard version, calibrate thresholds and exchange decisions.

One concept per module: :mod:`.settings` (the pipeline YAML's ``review:`` section), :mod:`.reasons`
(the one place that reads drop/flag reasons), :mod:`.db` (tables and versioned migrations),
:mod:`.clips` (clip bytes, thumbnails and metadata read through ``manifest.json``), :mod:`.sampling`
(which clips enter the queue), :mod:`.queue` (leases and decisions), :mod:`.app` (HTTP routes and the
page), :mod:`.apply` (decisions -> a ``review`` version of the shards), :mod:`.outrank` (human
decisions kept by later refilters and dedup passes), :mod:`.calibrate` and :mod:`.exchange`.
"""
