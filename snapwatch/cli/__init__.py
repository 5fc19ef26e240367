"""The command line: argument parsing, commands, terminal text, the demo."""
