"""``orderflow describe``: an Order's or a Fulfillment's story, read from both objects and their Events.

- :mod:`orderflow.describe.timeline`: the pure part, objects in, summaries and timeline rows out;
- :mod:`orderflow.describe.render`: plain text, a rich terminal layout, JSON;
- :mod:`orderflow.describe.source`: reading (and watching) the API server;
- :mod:`orderflow.describe.command`: the arguments and ``--watch``.

Also a kubectl plugin: installed as ``kubectl-orderflow`` on PATH, ``kubectl orderflow describe
order/NAME`` runs :func:`orderflow.cli.kubectl_plugin` with the same arguments as ``orderflow``.
"""
