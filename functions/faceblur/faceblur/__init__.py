"""faceblur: find every face in a photo and make it unrecognisable.

Importing this package is cheap on purpose: the detector (TensorFlow, OpenCV dnn)
is only loaded by `faceblur.detect.build_detector`, so storage and config can be
used by the frontend without the model.
"""

__version__ = "0.1.0"
