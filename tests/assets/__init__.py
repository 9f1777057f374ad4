"""The sample clips and their subtitles; installed as the data package ``microemo.samples``."""
