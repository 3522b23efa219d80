"""orderflow: loosely coupled order and fulfillment workflows as Kubernetes custom resources."""

__version__ = "0.1.0"

# The runtime's distribution: not `orderflow`, which on PyPI is another project's.
DISTRIBUTION = "orderflow-operator"

# Neither distribution is on PyPI: both install from a checkout, the runtime (`.`) and the dev
# wing (`./packaging/orderflow-dev`).
DEV_INSTALL = "pip install . ./packaging/orderflow-dev, in a checkout of orderflow (not from PyPI)"
