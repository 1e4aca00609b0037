"""huoke's demo: generated sample data, the simulation that runs it, and ``huoke demo``."""
