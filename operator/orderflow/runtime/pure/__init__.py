"""The pure part of the runtime: state in, value out; no I/O, no clock, no Kopf.

- :mod:`~orderflow.runtime.pure.conditions`: kstatus's conditions, set and warned of once;
- :mod:`~orderflow.runtime.pure.events`: the Event a decision asks for, and which to post
  (``Correlator``, on a clock the caller passes);
- :mod:`~orderflow.runtime.pure.reading`: a watched body as the contract's models, as far as it
  can be read;
- :mod:`~orderflow.runtime.pure.errors`: the API server's errors as exceptions, their quoted
  values redacted;
- :mod:`~orderflow.runtime.pure.mergepatch`: RFC 7386 arithmetic.

The workflow cores (``order.workflow``, ``order.mirror``, ``fulfillment.workflow``) and describe
use it, and so does the runtime's I/O (the client, the recorder, the status writer). It imports
the contract (``orderflow.api``) and nothing else of orderflow's; an import-linter contract keeps
it so, and keeps the cores from every other module of the runtime."""
