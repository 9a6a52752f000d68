"""The tools around the FOCUS dataset script (focus_dataset.py), one module per job.

- release: reading a release folder or focus.zip safely, its annotation rows and image bytes
- parquet: writing the converted folder's Parquet shards and reading their annotation columns
- card: the converted folder's dataset card
- convert: `focus-dataset convert`, a release into a Hub-ready dataset folder
- hub: uploading a converted folder to the Hub
- published: the paper's published statistics
- statistics: Tables 1 and 2 from the data, their comparison with the published ones, the fingerprint
- validate: `focus-dataset validate`, every check of a release or a converted folder
- sample: a synthetic release in the public layout
- cli: the `focus-dataset` command line
"""
