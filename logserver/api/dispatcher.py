"""Routes a decoded request to its handler and turns failures into error responses.

A body with missing or ill-typed fields (``KeyError``/``TypeError``/``ValueError``
while a handler reads it) is answered with ``INVALID_REQUEST`` naming the
problem; the connection stays open, because the frame itself was sound.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from client.errors import InvalidRequestError, LogServerError, UnsupportedVersionError
from client.protocol import SUPPORTED_VERSIONS, ApiKey, RequestHeader
from logserver.api import (
    admin,
    configs,
    elect_leaders,
    fetch,
    leader_epochs,
    list_offsets,
    metadata,
    produce,
)
from logserver.network.connection import HandlerResult
from logserver.network.response import Response

if TYPE_CHECKING:
    from logserver.broker import Broker

__all__ = ["RequestDispatcher"]

log = logging.getLogger(__name__)

Handler = Callable[["Broker", dict[str, Any], memoryview], HandlerResult]

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
}

_BODY_ERRORS = (KeyError, TypeError, ValueError, IndexError, AttributeError)


def error_response(exc: LogServerError) -> Response:
    return Response({"error": exc.code, "error_message": exc.message})


class RequestDispatcher:
    def __init__(self, broker: Broker) -> None:
        self._broker = broker

    def dispatch(
        self, header: RequestHeader, body: dict[str, Any], tail: memoryview, peer: str
    ) -> HandlerResult:
        handler = _HANDLERS.get(header.api_key)
        versions = SUPPORTED_VERSIONS.get(header.api_key)  # type: ignore[call-overload]
        if handler is None or versions is None:
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
