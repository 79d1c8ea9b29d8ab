"""bench: measure whether explanation maps point at the lesions that drive a medical image classifier."""

__version__ = "0.1.0"
