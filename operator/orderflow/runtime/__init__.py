"""What both controllers share and neither owns: the client, the cache, the work queue, the status
writer, conditions, logs, metrics, readiness, peering and the runner that starts Kopf.

Some of it is pure, and the workflow cores use it too: ``conditions`` (kstatus's set, warn once),
``events`` (the Event a decision asks for) and ``reading`` (a body as far as it can be read); so
are ``errors`` (the API server's errors, values redacted) and ``mergepatch``. The I/O is in
``client`` (HTTP and its async facade) and ``recorder`` (posting Events).

It knows the contract (``orderflow.api``) and no controller: an import-linter contract."""
