"""Routes a decoded request to its handler and turns failures into error responses.

Handlers are called ``handler(broker, body, tail)``; the group membership APIs,
which record who their members are, get a fourth argument, the
``RequestContext`` (the header's client id and the peer's address).

A body with missing or ill-typed fields (``KeyError``/``TypeError``/``ValueError``
while a handler reads it) is answered with ``INVALID_REQUEST`` naming the
problem; the connection stays open, because the frame itself was sound.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from client.errors import InvalidRequestError, LogServerError, UnsupportedVersionError
from client.protocol import SUPPORTED_VERSIONS, ApiKey, RequestHeader
from logserver.api import (
    admin,
    configs,
    elect_leaders,
    fetch,
    find_coordinator,
    group_admin,
    group_membership,
    group_offsets,
    leader_epochs,
    list_offsets,
    metadata,
    produce,
)
from logserver.api.context import RequestContext
from logserver.network.connection import HandlerResult
from logserver.network.response import Response

if TYPE_CHECKING:
    from logserver.broker import Broker

__all__ = ["RequestDispatcher"]

log = logging.getLogger(__name__)

Handler = Callable[["Broker", dict[str, Any], memoryview], HandlerResult]
ContextHandler = Callable[["Broker", dict[str, Any], memoryview, RequestContext], HandlerResult]

_HANDLERS: dict[int, Handler] = {
    ApiKey.API_VERSIONS: lambda broker, body, tail: Response(
        {
            "error": 0,
            "api_versions": [[int(k), lo, hi] for k, (lo, hi) in SUPPORTED_VERSIONS.items()],
        }
    ),
    ApiKey.METADATA: metadata.handle_metadata,
    ApiKey.CREATE_TOPICS: admin.handle_create_topics,
    ApiKey.DELETE_TOPICS: admin.handle_delete_topics,
    ApiKey.DESCRIBE_CONFIGS: configs.handle_describe_configs,
    ApiKey.ALTER_CONFIGS: configs.handle_alter_configs,
    ApiKey.PRODUCE: produce.handle_produce,
    ApiKey.FETCH: fetch.handle_fetch,
    ApiKey.LIST_OFFSETS: list_offsets.handle_list_offsets,
    ApiKey.OFFSETS_FOR_LEADER_EPOCH: leader_epochs.handle_offsets_for_leader_epoch,
    ApiKey.ELECT_LEADERS: elect_leaders.handle_elect_leaders,
    ApiKey.FIND_COORDINATOR: find_coordinator.handle_find_coordinator,
    ApiKey.OFFSET_COMMIT: group_offsets.handle_offset_commit,
    ApiKey.OFFSET_FETCH: group_offsets.handle_offset_fetch,
    ApiKey.LIST_GROUPS: group_admin.handle_list_groups,
    ApiKey.DESCRIBE_GROUPS: group_admin.handle_describe_groups,
    ApiKey.DELETE_GROUPS: group_admin.handle_delete_groups,
}

_CONTEXT_HANDLERS: dict[int, ContextHandler] = {
    ApiKey.JOIN_GROUP: group_membership.handle_join_group,
    ApiKey.SYNC_GROUP: group_membership.handle_sync_group,
    ApiKey.HEARTBEAT: group_membership.handle_heartbeat,
    ApiKey.LEAVE_GROUP: group_membership.handle_leave_group,
}

_BODY_ERRORS = (KeyError, TypeError, ValueError, IndexError, AttributeError)


def error_response(exc: LogServerError) -> Response:
    return Response({"error": exc.code, "error_message": exc.message})


class RequestDispatcher:
    def __init__(self, broker: Broker) -> None:
        self._broker = broker
        self._metrics = broker.metrics
        self._timed = broker.metrics.enabled

    def dispatch(
        self, header: RequestHeader, body: dict[str, Any], tail: memoryview, peer: str
    ) -> HandlerResult:
        if not self._timed:
            return self._dispatch(header, body, tail, peer)
        started = time.perf_counter()
        result = self._dispatch(header, body, tail, peer)
        if result is None or isinstance(result, Response):
            self._metrics.request(header.api_key, body, started, result)
            return result
        return self._timing(header.api_key, body, started, result)

    async def _timing(
        self,
        api_key: int,
        body: dict[str, Any],
        started: float,
        pending: Awaitable[Response | None],
    ) -> Response | None:
        result = await pending
        self._metrics.request(api_key, body, started, result)
        return result

    def _dispatch(
        self, header: RequestHeader, body: dict[str, Any], tail: memoryview, peer: str
    ) -> HandlerResult:
        handler = _HANDLERS.get(header.api_key)
        with_context = _CONTEXT_HANDLERS.get(header.api_key)
        versions = SUPPORTED_VERSIONS.get(header.api_key)  # type: ignore[call-overload]
        if (handler is None and with_context is None) or versions is None:
            return error_response(
                UnsupportedVersionError(f"API key {header.api_key} is not supported")
            )
        if not versions[0] <= header.api_version <= versions[1]:
            name = ApiKey(header.api_key).name
            return error_response(
                UnsupportedVersionError(
                    f"{name} version {header.api_version} is not supported "
                    f"(versions {versions[0]}..{versions[1]})"
                )
            )
        try:
            if with_context is not None:
                context = RequestContext(header.client_id or "", peer)
                result = with_context(self._broker, body, tail, context)
            else:
                assert handler is not None
                result = handler(self._broker, body, tail)
        except LogServerError as exc:
            return error_response(exc)
        except _BODY_ERRORS as exc:
            return _bad_body(header, peer, exc)
        if result is None or isinstance(result, Response):
            return result
        return self._guard(header, peer, result)

    async def _guard(
        self, header: RequestHeader, peer: str, pending: Awaitable[Response | None]
    ) -> Response | None:
        try:
            return await pending
        except LogServerError as exc:
            return error_response(exc)
        except _BODY_ERRORS as exc:
            return _bad_body(header, peer, exc)


def _bad_body(header: RequestHeader, peer: str, exc: Exception) -> Response:
    name = ApiKey(header.api_key).name
    log.info("%s: malformed %s request: %r", peer, name, exc, exc_info=log.isEnabledFor(10))
    return error_response(InvalidRequestError(f"malformed {name} request: {exc!r}"))
