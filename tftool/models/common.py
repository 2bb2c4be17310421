"""What the builders share: the name of the logits layer and the input-size check of the
ImageNet-shaped models."""
from tftool import UserError

# The classification head: everything else is the backbone that --freeze_backbone_epochs
# freezes (train/fit.py).
HEAD_LAYER = "logits"


def _check_size(model, input_shape):
    """Raises UserError (naming --image_size) when input_shape's height or width is under 32
    px, the least the ImageNet-shaped builders (`model`: its --model name) take."""
    h, w = input_shape[:2]
    if min(h, w) < 32:
        raise UserError(f"--model={model} needs images of at least 32x32, got {h}x{w}; "
                        f"pass --image_size=32 (or larger)")
