"""The reproduction scripts of the results pages (docs/results/*.md): repository only, not shipped in the wheel.

Each ``reproduce/<name>.py`` is a script, run from the repository root as a module::

    python -m reproduce.tse_darts --help

Scripts import nothing from each other; what several of them share (the peer checks' machinery, the
peer-file TSE runs) is in :mod:`reproduce.common`, which the tests import too.  No test imports a script:
one that runs a script end to end starts ``python -m reproduce.<name>`` in a subprocess.
"""
