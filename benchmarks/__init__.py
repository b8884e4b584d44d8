"""Benchmarks for the assistant: run with ``finassist bench NAME`` or ``python -m benchmarks.NAME``.

``decode``: single-stream decode speed of the engine beside plain ``model.generate``
on the same model, and the dtype comparison behind the CPU default in
``assistant/device.py``. See ``docs/benchmarks/README.md``.
"""
