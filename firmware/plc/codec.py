"""The MME codec's public face: ``encode`` and ``decode`` over every registered message."""

from firmware.plc import cm_messages, vs_messages
from firmware.plc.messages import REGISTRY, Message, decode, encode

CATALOGUES = (cm_messages, vs_messages)  # importing them registers their messages

__all__ = ["CATALOGUES", "REGISTRY", "Message", "decode", "encode"]
