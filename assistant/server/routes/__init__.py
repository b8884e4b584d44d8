"""The routes of the HTTP service, one module per concern; each route is thin: parse, call the
``Service`` (and through it the ``Assistant``), shape the answer."""
