"""Who sent a request: what the group APIs record about each member (DescribeGroups)."""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["RequestContext"]


class RequestContext(NamedTuple):
    client_id: str
    """The request header's client id ("" when the client sent none)."""
    peer: str
    """The connection's remote ``host:port``."""

    @property
    def client_host(self) -> str:
        return self.peer.rpartition(":")[0] or self.peer
