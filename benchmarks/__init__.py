"""Benchmarks for the assistant: run with ``finassist bench NAME`` (``benchmarks/cli.py``), or
``python -m benchmarks.decode``. See ``docs/benchmarks/README.md``.

One module per benchmark (``decode``, ``serve``, ``load``, ``classify``: what is measured and how),
and the parts they share: ``workload`` (the prompts and questions sent), ``timing`` (timed
generation), ``machine_load`` (how busy other processes keep the machine), ``reports`` (tables),
``charts`` (PNG charts) and ``common`` (command line, commit, free port, percentiles, a background
server). What the machine is comes from ``assistant.machine``.
"""
