"""Measuring a batch-size sweep: from runs to ``Bmin``, ``Bopt`` and their intervals (``dbs fit``).

- :mod:`~dbs_theory.measure.curves`: loss curves smoothed in data, first hitting steps, E(S) points, crossings;
- :mod:`~dbs_theory.measure.estimators` and :mod:`~dbs_theory.measure.floors`: law-free ``Bopt(D)`` and
  ``Bmin``;
- :mod:`~dbs_theory.measure.fit`: E(S) laws fitted to the points, with bootstrap intervals;
- :mod:`~dbs_theory.measure.tabulate` and :mod:`~dbs_theory.measure.fit_table`: the per-target table
  (``bopt_table``) and its type :class:`~dbs_theory.measure.fit_table.BoptTable`, the owner of fit.json;
- :mod:`~dbs_theory.measure.bopt_curve`: the optimal-batch curve ``Bopt(D)``;
- :mod:`~dbs_theory.measure.verdicts`: the one rule for a verdict, its interval and the seeds it needs;
- :mod:`~dbs_theory.measure.gns` and :mod:`~dbs_theory.measure.planner`: the gradient noise scale, and which
  runs to add to a sweep (``dbs plan``).
"""

__all__: list[str] = []
