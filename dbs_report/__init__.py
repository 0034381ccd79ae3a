"""The presentation layer: figures, reports and the demo, above ``dbs_theory``, ``sim`` and ``validate``.

Imports flow one way: ``dbs_theory`` <- ``sim`` <- ``validate`` <- ``dbs_report``.
Nothing below imports this package; it needs matplotlib (a core dependency)
but not torch, except ``dbs demo``'s transformer sweep.
"""
