"""``dbs`` subcommands that belong to :mod:`dbs_theory` itself."""

__all__: list[str] = []
