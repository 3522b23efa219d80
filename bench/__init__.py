"""The orderflow benchmark: `make bench` (python -m bench)."""
