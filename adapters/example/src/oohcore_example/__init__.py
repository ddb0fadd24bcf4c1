"""oohcore-example: the worked example of a channel adapter (docs/adapters.md).

It posts each message to a chat room's incoming-message URL (many chat and incident tools take
``POST {"text": ...}`` with a bearer token). Registered as ``example-chat``.
"""

from .channel import ChatChannel, ChatConfig

__all__ = ["ChatChannel", "ChatConfig"]
