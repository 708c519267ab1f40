"""What several reproduction scripts share, importable by the scripts and the tests.

* :mod:`.naslib_peer`: the peer checks' machinery (our network sizes and zero-cost scores vs the values
  recorded in NASLib's zero-cost benchmark files);
* :mod:`.darts_peer`, :mod:`.nb101_peer`: the DARTS / NAS-Bench-301 and NAS-Bench-101 peer files and how
  our networks are built at NASLib's size (``darts_peer_check``, ``nb101_peer_check``, ``tse_darts``,
  ``tse_nb101`` use them);
* :mod:`.peer_tse`: TSE on a peer file's architectures (``tse_darts``, ``tse_nb101``; ``tse_randwired``
  uses its tables);
* :mod:`.estimator_diagnosis`: Ning et al.'s diagnosis and voting ensembles on recorded scores
  (``estimator_diagnosis``).
"""
