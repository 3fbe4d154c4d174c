"""Pixels in and out: photos (decode, encode, the photo pipeline), video streams and tracking."""
