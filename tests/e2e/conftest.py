"""Fixtures shared by the end-to-end tests: the API client with one key per role."""

from tests.e2e.test_api import api  # noqa: F401 - a fixture, for every test here
