"""Helpers shared by the test suites: backends, the in-process stack, scripted peers."""
