"""Look into the buckets of the running stack (or any S3 server the settings name).

.venv/bin/python functions/local/buckets.py                  # every bucket's keys
.venv/bin/python functions/local/buckets.py results          # one bucket
.venv/bin/python functions/local/buckets.py put photo.jpg    # into the inbox (an event)
.venv/bin/python functions/local/buckets.py get results KEY out.jpg
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

from faceblur.config import load_settings
from faceblur.errors import FaceblurError
from faceblur.store.s3 import Store


def main(argv: list[str]) -> int:
    settings = load_settings()
    store = Store(settings)
    buckets = (settings.bucket_inbox, settings.bucket_originals, settings.bucket_results)
    try:
        if argv[:1] == ["get"] and len(argv) == 4:
            Path(argv[3]).write_bytes(store.read(argv[1], argv[2]))
            print(f"{argv[1]}/{argv[2]} -> {argv[3]}")
        elif argv[:1] == ["put"] and len(argv) == 2:
            path = Path(argv[1])
            data = path.read_bytes()
            store.client.put_object(
                bucket_name=settings.bucket_inbox,
                object_name=path.name,
                data=io.BytesIO(data),
                length=len(data),
            )
            print(f"{path} -> {settings.bucket_inbox}/{path.name}")
        elif len(argv) <= 1:
            for bucket in argv or buckets:
                keys = store.keys(bucket)
                print(f"{bucket}: {len(keys)} object(s)")
                for key in keys:
                    print(f"  {key}")
        else:
            print(__doc__, file=sys.stderr)
            return 2
    except FaceblurError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
