"""``make bench`` (``python -m orderflow.dev.bench``): the whole flow timed on a local control plane."""
