"""The presentation layer: figures, reports and the demo, above ``dbs_theory``, ``sim`` and ``validate``.

Imports flow one way: ``dbs_theory`` <- ``sim`` <- ``validate`` <- ``dbs_report``.
Nothing below imports this package; it needs matplotlib (a core dependency)
but not torch, except ``dbs demo``'s transformer sweep.

Map:

- :mod:`dbs_report.commands`: ``dbs report DIR``; :mod:`dbs_report.report` writes ``report.md`` / ``report.html``.
- :mod:`dbs_report.presenters`: one function per kind of result folder, each returning its figures.
- :mod:`dbs_report.figures`: the matplotlib figures (loss curves, E(S) panels, Bmin/Bopt, schedules).
- :mod:`dbs_report.nqm`: NQM frontier points and three-phase fits for the figures.
- :mod:`dbs_report.demo`: ``dbs demo``, the main job end to end.
"""
