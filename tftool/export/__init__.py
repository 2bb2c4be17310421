"""From a trained Keras model to a deployable file: conversion to .tflite bytes (convert.py),
the accuracy gate (gate.py) and the JSON model card (card.py)."""
