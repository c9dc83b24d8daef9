"""Telephony and file sources into the audio topic."""
