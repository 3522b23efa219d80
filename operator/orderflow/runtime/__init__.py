"""What both controllers share and neither owns: the client, the cache, the work queue, the status
writer, logs, metrics, readiness, peering and the runner that starts Kopf.

Its pure part is in :mod:`orderflow.runtime.pure` (conditions, events, reading, errors, merge
patches), which the workflow cores and describe use too; the rest is plumbing, and the cores
import none of it. The I/O is in ``client`` (HTTP and its async facade) and ``recorder``
(posting Events).

It knows the contract (``orderflow.api``) and no controller: an import-linter contract."""
