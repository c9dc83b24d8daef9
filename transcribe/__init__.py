"""Streaming speech-to-text: one ASR session per call leg, audio topic -> transcript topic."""
