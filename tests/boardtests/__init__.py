"""Tests of SD card flashing, staging and deployment (a package, so its conftest and helpers do not
clash with the top-level tests/conftest.py)."""
