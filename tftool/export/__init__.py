"""From a trained Keras model to a deployable file: conversion to .tflite bytes (convert.py),
TFLite metadata read (metadata.py) and written (metadata_write.py), the accuracy gate
(gate.py), the JSON model card (card.py), selective int8 (debug.py), export's loop over the
variants (driver.py), ONNX files (onnx_export.py), microcontroller C arrays (micro_export.py
over micro/) and the one-model-per-folder guard (owner.py)."""
