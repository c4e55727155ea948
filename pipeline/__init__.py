"""IIC video representation pipeline: the click CLI, params, paths and runtime helpers."""
