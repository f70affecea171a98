"""The zip format's records and constants, shared by the strict reader (mnist_pipeline.ziparchive)
and the PNG export's writer (mnist_pipeline.zipwriter), so that neither imports the other: the
PNG export depends on the writer only, unpack and download on the reader only.

Format reference: PKWARE APPNOTE.TXT 6.3 (sections 4.3.7 local header, 4.3.12 central header,
4.3.14-4.3.16 zip64 and end records).
"""

from __future__ import annotations

import struct

STORED = 0
DEFLATED = 8

EOCD = struct.Struct("<IHHHHIIH")
EOCD_SIGNATURE = 0x06054B50
ZIP64_LOCATOR = struct.Struct("<IIQI")
ZIP64_LOCATOR_SIGNATURE = 0x07064B50
ZIP64_EOCD = struct.Struct("<IQHHIIQQQQ")
ZIP64_EOCD_SIGNATURE = 0x06064B50
CENTRAL_SIGNATURE = 0x02014B50
LOCAL = struct.Struct("<IHHHHHIIIHH")
LOCAL_SIGNATURE = 0x04034B50
#: The zip64 extended information extra field's header id.
ZIP64_EXTRA_ID = 0x0001
#: General-purpose flag: the name is UTF-8.
FLAG_UTF8 = 0x0800
#: Version made by: Unix, whose mode sits in the external attributes' high 16 bits.
UNIX = 3
