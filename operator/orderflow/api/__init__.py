"""The contract between the two controllers: the Order and Fulfillment kinds, as typed models."""

from orderflow.api.common import API_VERSION, GROUP, VERSION

__all__ = ["API_VERSION", "GROUP", "VERSION"]
