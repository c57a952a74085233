"""Records to key-result values: named metrics computed as SQL over the record mirror.

``metrics`` says what a metric is and holds the built-in ones by family; ``custom`` makes
metrics of an OKR file's SQL or a package's function; ``catalog`` puts them together when
an OKR file loads; ``measure`` computes every key result and writes it with its lineage.
"""
