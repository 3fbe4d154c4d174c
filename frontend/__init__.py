"""The faceblur web page: a Flask client of the faceblur function over HTTP.

It never imports the detector, numpy or OpenCV; it only needs the package's config,
errors, formats, storage and options (the names of the choices).
"""
