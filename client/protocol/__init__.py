"""The wire protocol: frames, API keys and message bodies, shared by broker and client.

See docs/protocol.md for the frame layout and every request and response body.
"""

from client.protocol.api_keys import SUPPORTED_VERSIONS, ApiKey
from client.protocol.frame_reader import FrameReader
from client.protocol.frames import (
    FRAME_PREFIX,
    NO_RESPONSE,
    RequestHeader,
    decode_request,
    decode_response,
    encode_request,
    encode_response,
)

__all__ = [
    "FRAME_PREFIX",
    "NO_RESPONSE",
    "SUPPORTED_VERSIONS",
    "ApiKey",
    "FrameReader",
    "RequestHeader",
    "decode_request",
    "decode_response",
    "encode_request",
    "encode_response",
]
