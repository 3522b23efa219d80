"""Test support: the pytest plugin that runs the real control plane and the controllers."""
