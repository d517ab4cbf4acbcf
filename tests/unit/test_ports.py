"""Service ports of the dev and test stacks (cli/devstack.py free_port): below the kernel's ephemeral range, where no
outgoing connection can take a port while its service restarts, and never handed out twice."""

from __future__ import annotations

import socket
from contextlib import closing

from cli.devstack import SERVICE_PORTS_FROM, _ephemeral_ports_start, free_port


def test_service_ports_are_free_distinct_and_below_the_ephemeral_range() -> None:
    ports = [free_port() for _ in range(50)]
    assert len(set(ports)) == 50
    assert all(SERVICE_PORTS_FROM <= port < _ephemeral_ports_start() for port in ports), ports
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind(("127.0.0.1", ports[-1]))   # free indeed
