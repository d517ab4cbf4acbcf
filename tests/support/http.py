"""One SSL context for every httpx client of the test process.

httpx builds a fresh SSL context, loading certifi's whole CA bundle, for every client it creates, even one that
only ever speaks plain HTTP to 127.0.0.1: 33 ms of CPU each on this machine. Module-level `httpx.get(...)` creates a
client per call, and so did the tests' token refresh, so the test process spent two thirds of its time in the
authorisation matrix loading certificates. The suite's clients never use TLS; the context is built once and shared
(an SSLContext is safe to share between clients). Production code keeps one client per process and is untouched.
"""

from __future__ import annotations

import functools
import ssl
from typing import Any

from httpx._transports import default as transports

_create_ssl_context = transports.create_ssl_context


@functools.cache
def _default_context(trust_env: bool) -> ssl.SSLContext:
    return _create_ssl_context(verify=True, cert=None, trust_env=trust_env)


def _cached_create_ssl_context(verify: Any = True, cert: Any = None, trust_env: bool = True) -> ssl.SSLContext:
    if verify is True and cert is None:
        return _default_context(trust_env)
    return _create_ssl_context(verify=verify, cert=cert, trust_env=trust_env)


def share_one_ssl_context() -> None:
    transports.create_ssl_context = _cached_create_ssl_context
