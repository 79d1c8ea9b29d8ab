"""The package version, in a module of its own so that any module can name it without importing ``bench``."""

VERSION = "0.1.0"
