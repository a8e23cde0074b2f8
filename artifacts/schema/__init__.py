"""Keys that cross a stage boundary, one module per metadata file.

Each module names the keys of one JSON file once; the stage that writes the file and every
stage that reads it import the names from here, so a renamed key breaks loudly at import
time instead of silently reading ``None``.
"""
