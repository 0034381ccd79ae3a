"""Reading what trainers write: loss logs in every format users bring, and the JSON files the commands exchange.

- :mod:`~dbs_theory.logs.log_files`: one CSV or JSONL log file into checked columns;
- :mod:`~dbs_theory.logs.readers`: TensorBoard, Weights & Biases and Hugging Face logs, by format;
- :mod:`~dbs_theory.logs.runs`: :class:`~dbs_theory.logs.runs.Run` and ``load_runs`` (files to runs, one per
  batch size and seed);
- :mod:`~dbs_theory.logs.grid_table`: a published sweep table (final loss per batch and data);
- :mod:`~dbs_theory.logs.schemas`: one schema per JSON file the package reads (fit.json, schedule.json, ...).

This layer imports only the package's root helpers (errors, io, messages): logs are read before anything is
measured or decided (``tests/test_layers.py``).
"""

__all__: list[str] = []
