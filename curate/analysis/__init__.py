"""Consumers of the single decode pass: shots, motion, technical quality, hashes, clip spans."""
