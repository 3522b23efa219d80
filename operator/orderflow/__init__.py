"""orderflow: loosely coupled order and fulfillment workflows as Kubernetes custom resources."""

__version__ = "0.1.0"
