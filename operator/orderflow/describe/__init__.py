"""``orderflow describe``: an Order's or a Fulfillment's story, read from both objects and their Events.

- :mod:`orderflow.describe.timeline`: the pure part, objects in, summaries and timeline rows out,
  from :mod:`~orderflow.describe.objects` (the summaries), :mod:`~orderflow.describe.rows`,
  :mod:`~orderflow.describe.folding` (the Events) and :mod:`~orderflow.describe.redaction`, in the
  shape of :mod:`~orderflow.describe.shape` (also ``-o json``'s);
- :mod:`orderflow.describe.render`: plain text, a rich terminal layout, JSON;
- :mod:`orderflow.describe.source`: reading (and watching) the API server;
- :mod:`orderflow.describe.command`: the arguments and ``--watch``.

Also a kubectl plugin: installed as ``kubectl-orderflow`` on PATH, ``kubectl orderflow describe
order/NAME`` runs :func:`orderflow.cli.kubectl_plugin` with the same arguments as ``orderflow``.
"""
