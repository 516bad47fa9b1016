"""Privacy concerns every table: keyed hashes of identifiers (``hashing``), erasure predicates
(``erasure``) and the suppression of erased persons' rows at ingest (``cdp_spark.ingest.suppression``)."""
