"""Protocol adapters: thin translations from a network protocol to the Archive API.

- ``pacscore.adapters.dimse``: DICOM DIMSE (C-ECHO, C-STORE, C-FIND, C-GET, C-MOVE) through
  pynetdicom event handlers, plus ``serve()`` to run a standalone SCP.
- ``pacscore.adapters.dicomweb``: an ASGI application for QIDO-RS, WADO-RS and STOW-RS.

Adapters translate protocol, never semantics: a C-FIND, a QIDO-RS search and an in-process
``Archive.find()`` with the same keys return the same matches.
"""
