"""The faceblur web page: a Flask client of the faceblur function over HTTP.

It never imports the detector; it only needs the package's config, storage and
the names of the anonymisation methods.
"""
