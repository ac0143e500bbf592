"""The vault: the only code that touches private keys and passwords at rest.

Pure Python on top of ``cryptography`` and the file system (no Django import):
the service layer builds the objects from settings and passes them in.
"""
