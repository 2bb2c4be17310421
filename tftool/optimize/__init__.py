"""Pure model -> model transforms: quantization-aware training, pruning, distillation."""
