"""Reports: tables and figures rebuilt from stored results."""
