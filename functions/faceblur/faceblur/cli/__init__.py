"""The command lines: `faceblur` (main), its sealing commands, `faceblur-admin`."""
