"""Measurements of the machine and the process: memory, CPU, loaded models."""
