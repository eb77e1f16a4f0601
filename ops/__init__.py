"""The operator's surface: the command line, admin API and console, dev stack and load tools."""
