"""What both controllers share and neither owns: the client, the cache, the work queue, the status
writer, conditions, logs, metrics, readiness, peering and the runner that starts Kopf.

It knows the contract (``orderflow.api``) and no controller: an import-linter contract."""
