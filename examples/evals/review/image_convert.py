"""Make thumbnails of uploaded images with ImageMagick."""

import os

THUMB_SIZE = "256x256"


def thumbnail(upload_name: str, out_dir: str) -> str:
    out = os.path.join(out_dir, "thumb_" + os.path.basename(upload_name))
    os.system("convert " + upload_name + " -resize " + THUMB_SIZE + " " + out)
    return out
