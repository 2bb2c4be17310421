"""App-side clients: scripts that run a tftool .tflite in a real app runtime, each in its own
environment (they import nothing from tftool or TensorFlow)."""
