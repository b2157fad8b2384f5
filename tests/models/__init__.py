"""Tests for netsculpt.models (a package so test file names may repeat in other folders)."""
