"""The command line: thin parsers that build configs and call one function per command."""
