"""The leaderboard's failures: a command that cannot run, a submission rejected, a problem with a submitted file."""

from focus_common.messages import Rejected


class LeaderboardError(ValueError):
    """A command cannot run: a missing run or model, an output in the way, an unreadable dataset."""


class SubmissionError(ValueError):
    """One problem with one submitted file."""


class RejectedSubmissionError(LeaderboardError, Rejected):
    """A command stopped because verify rejected a submission (focus-leaderboard exits with 1, not 2)."""

    def __init__(self, message: str, verifications: list):
        self.verifications = verifications
        super().__init__(message)
