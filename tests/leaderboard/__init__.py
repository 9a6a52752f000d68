"""The leaderboard's tests, one file per module of harness/leaderboard/."""
