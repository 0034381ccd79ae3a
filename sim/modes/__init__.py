"""``dbs simulate``'s modes, one module each with a ``run(args)`` (:mod:`sim.commands` parses and
dispatches); :mod:`sim.modes.common` holds what they share."""

__all__: list[str] = []
