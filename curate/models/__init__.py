"""Model side of the pipeline: CLIP, aesthetic heads, captioners and their weights.

Importing this package is cheap; torch, open_clip and transformers are
imported inside the functions that need them.

    clip.py        open_clip loading, frame/text embedding
    aesthetic.py   LAION aesthetic heads
    captioners.py  clip-retrieval and transformers captioners
    sidecars.py    captions carried with the input (manifest, .json/.srt/.vtt)
    hygiene.py     caption cleaning and degenerate-output detection
    hub.py         cache / offline / download policy, ModelUnavailable
    download.py    the models of a pipeline: check before a run, download for offline use
    device.py      device and precision per worker
    settings.py    pydantic config of the model stages
"""

from curate.models.hub import ModelUnavailable

__all__ = ["ModelUnavailable"]
