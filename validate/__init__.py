"""Real transformer runs: a small PyTorch pretraining harness and the experiments that test the theory on it.

Map (the ``torch`` extra; batch sizes and data in tokens, steps are optimizer steps):

- :mod:`validate.config`: ``TrainConfig`` (torch-free) and the model presets' sizes.
- :mod:`validate.model`: a GPT-style ``Transformer`` and its ``preset``.
- :mod:`validate.data`: the corpus (the stdlib's sources, a text folder, or a uint16 ``.bin``), ``batch_at``.
- :mod:`validate.loop`: the training loop's parts (``Trainer``, ``Logger``, ``Checkpointer``, noise scale).
- :mod:`validate.train`: ``dbs train``: one run, resumable, under a batch/LR/sequence-length schedule, DDP.
- :mod:`validate.gns`, :mod:`validate.checkpoint`: the two-batch gradient noise scale; atomic checkpoints.
- :mod:`validate.experiments`: ``dbs validate NAME`` (sweep, schedule, growth, ablations, predict, power),
  tiers, the run cache and the launchers.
"""
