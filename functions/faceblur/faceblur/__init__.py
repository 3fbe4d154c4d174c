"""faceblur: find every face in a photo and make it unrecognisable.

Importing this package is cheap on purpose: the detector (TensorFlow, OpenCV dnn)
is only loaded by `faceblur.detection.build_detector`, so the floors the web page
uses (settings, store, accounts) load without the model. docs/architecture.md draws
the floors; pyproject.toml's import contracts keep them.
"""

__version__ = "0.1.0"
