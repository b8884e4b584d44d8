"""The helpers every benchmark shares (benchmarks/common.py)."""

from __future__ import annotations

import socket

import pytest

from benchmarks.common import command_line, free_port, git_commit, percentile


def test_percentile_interpolates_and_handles_no_values():
    assert percentile([4.0, 1.0, 3.0, 2.0], 0.5) == pytest.approx(2.5)
    assert percentile([1.0, 2.0, 3.0, 4.0, 5.0], 0.95) == pytest.approx(4.8)
    assert percentile([7.0], 0.95) == 7.0
    assert percentile([], 0.5) is None


def test_command_line_names_the_module_and_quotes_arguments():
    assert command_line(["/x/benchmarks/decode.py", "--tokens", "8"]) == "python -m benchmarks.decode --tokens 8"
    assert command_line(["/usr/bin/finassist", "bench", "serve", "--out", "a b"]) == "finassist bench serve --out 'a b'"


def test_free_port_can_be_bound():
    port = free_port()
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))


def test_git_commit_is_this_checkout():
    import subprocess

    head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    assert head.startswith(git_commit().removesuffix("-dirty"))
