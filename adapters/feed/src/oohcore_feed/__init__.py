"""oohcore's XML feed (spec 7.8): service requests as numbered, XSD-checked XML documents.

* :class:`FeedChannel` (entry point ``feed``) writes one document per service request into an
  organisation's feed folder, once per idempotency key; optionally signed and encrypted.
* :func:`read_feed` is the consumer's side: the documents after a cursor.
* :func:`parse_xml` is the safe XML parser every oohcore XML reader uses.
"""

from oohcore_feed.channel import FeedChannel, FeedConfig
from oohcore_feed.document import NAMESPACE, FeedDocumentError, schema_path
from oohcore_feed.folder import FeedEntry, FeedPage, read_feed
from oohcore_feed.safexml import UnsafeXMLError, XMLInputError, parse_xml, parse_xml_file

__all__ = [
    "NAMESPACE",
    "FeedChannel",
    "FeedConfig",
    "FeedDocumentError",
    "FeedEntry",
    "FeedPage",
    "UnsafeXMLError",
    "XMLInputError",
    "parse_xml",
    "parse_xml_file",
    "read_feed",
    "schema_path",
]
