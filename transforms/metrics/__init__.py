"""The built-in metrics, one module per family: sales, customers, support, change.

What a metric is lives in :mod:`transforms.metric`; the catalog (:mod:`transforms.catalog`)
puts these together with the packages' and the OKR file's own metrics.
"""
