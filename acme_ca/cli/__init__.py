"""The command line: the only place that builds the concrete parts from the configuration."""
