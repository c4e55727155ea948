"""Preprocessing: dataset index, demo videos, ffmpeg frames, TV-L1 flow and residuals into shards."""
