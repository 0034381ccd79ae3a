"""What a training run returns: :class:`TrainResult`, and the one line ``dbs train`` prints about it."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["TrainResult"]


@dataclass(frozen=True)
class TrainResult:
    """The summary of a finished (or already finished) run of :func:`validate.train.train`.

    Attributes
    ----------
    steps : int                 Optimizer steps taken in all.
    tokens : float              Tokens consumed in all.
    final_loss : float          Training loss of the last logged step (NaN if none was logged).
    log : str                   Path of the run's ``log.csv``.
    corpus : str                What the run trained on (:meth:`validate.data.Corpus.describe`).
    already_finished : bool     The checkpoint was at the full token count: nothing was trained.
    batch_rule : str or None    The online batch rule that chose the batches (``--batch-rule``), if any.
    decisions : tuple           ``(tokens from, batch in tokens)`` pairs the rule chose.
    batch_rounding : tuple      Dicts ``requested, tokens_from, used, seq_len``: batches that did not divide
                                into whole sequences and ran rounded.
    """

    steps: int
    tokens: float
    final_loss: float
    log: str
    corpus: str
    already_finished: bool = False
    batch_rule: str | None = None
    decisions: tuple = ()
    batch_rounding: tuple = ()

    def summary_line(self) -> str:
        """One line for people about the run."""
        if self.already_finished:
            return (
                f"already finished: {self.steps} steps, {self.tokens:.0f} tokens, final loss "
                f"{self.final_loss:.4f}; nothing to do (log {self.log})"
            )
        note = ""
        if self.decisions:
            sizes = " -> ".join(f"{b:g}" for _, b in self.decisions)
            note = f"; {self.batch_rule} rule chose batches {sizes} tokens"
        note += "".join(
            f"; note: batch {r['requested']:g} tokens from {r['tokens_from']:g} ran as {r['used']} "
            f"(not a whole number of {r['seq_len']}-token sequences)"
            for r in self.batch_rounding
        )
        return (
            f"trained {self.steps} steps, {self.tokens:.0f} tokens, final loss {self.final_loss:.4f}; "
            f"log {self.log} ({self.corpus}){note}"
        )
