"""The leaderboard's two kinds of failure: a command that cannot run, and a problem with a submitted file."""


class LeaderboardError(ValueError):
    """A command cannot run: a missing run or model, an output in the way, an unreadable dataset."""


class SubmissionError(ValueError):
    """One problem with one submitted file."""
