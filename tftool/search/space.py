"""The search space: what one trial of `tftool-search` chooses.

A candidate is a model builder with its size knobs (small_cnn: width and number of stages;
mobilenet_v2: alpha; any other builder of models.MODELS: its defaults), an input size, and an
export variant (int8, qat_int8, pqat_int8 with its target sparsity, clustered_int8, float16).
The space is built from flags with defaults that fit the data set (`default_space`); Optuna
samples it with `suggest` (categorical choices: the space is small and discrete, and
categorical parameters keep TPE from assuming an order that the latency does not follow).
"""
import dataclasses
import json
import math
from typing import Optional, Sequence

# The export variants a trial can end in, and the stages each needs after the float model.
VARIANT_STAGES = {
    "int8": (),
    "float16": (),
    "qat_int8": ("qat",),
    "pqat_int8": ("pruned", "pqat"),
    "clustered_int8": ("clustered",),
}
DEFAULT_VARIANTS = ("int8", "qat_int8", "pqat_int8", "clustered_int8", "float16")
DEFAULT_WIDTHS = (4, 8, 12, 16, 24, 32, 48)
DEFAULT_ALPHAS = (0.35, 0.5, 0.75, 1.0)
DEFAULT_SPARSITIES = (0.5, 0.7)
MIN_SIZE = {"small_cnn": 4}  # pixels; other builders: models' own minimum (32)


@dataclasses.dataclass(frozen=True)
class Candidate:
    """One point of the space. width/stages apply to small_cnn, alpha to mobilenet_v2;
    target_sparsity to pqat_int8 (None elsewhere). image_size: square input, pixels."""
    model: str
    image_size: int
    variant: str
    width: Optional[int] = None
    stages: Optional[int] = None
    alpha: Optional[float] = None
    target_sparsity: Optional[float] = None

    def build_kwargs(self):
        """Keyword arguments for models.build (None values are dropped there)."""
        return {"width": self.width, "stages": self.stages, "alpha": self.alpha}

    def key(self):
        """A stable string naming the architecture and input size, what the hardware figures
        depend on besides the conversion (hardware.conversion_mode): the variant's training
        (QAT, pruning) does not change a file's size or latency."""
        fields = {k: v for k, v in dataclasses.asdict(self).items()
                  if k not in ("target_sparsity", "variant") and v is not None}
        return json.dumps(fields, sort_keys=True)

    def describe(self):
        """"small_cnn (width 16, 2 stages) at 28 px, int8": what the candidate is."""
        knobs = [f"width {self.width}" if self.width else None,
                 f"{self.stages} stage{'s' if self.stages > 1 else ''}" if self.stages
                 else None,
                 f"alpha {self.alpha:g}" if self.alpha else None,
                 f"sparsity {self.target_sparsity:g}" if self.target_sparsity else None]
        return (f"{self.model} ({', '.join(k for k in knobs if k)}) at {self.image_size} px, "
                f"{self.variant}")


@dataclasses.dataclass(frozen=True)
class Space:
    """The choices of every parameter (tuples)."""
    models: Sequence[str]
    image_sizes: Sequence[int]
    variants: Sequence[str]
    widths: Sequence[int] = DEFAULT_WIDTHS
    stages: Sequence[int] = (1, 2, 3)
    alphas: Sequence[float] = DEFAULT_ALPHAS
    sparsities: Sequence[float] = DEFAULT_SPARSITIES

    def as_dict(self):
        """{parameter: [choices]} (JSON)."""
        return {k: list(v) for k, v in dataclasses.asdict(self).items()}


def max_stages(image_size):
    """small_cnn's most stages at this input: as many halvings as keep ≥ 2 px, at most 3."""
    return max(1, min(3, int(math.log2(image_size)) - 1))


def default_space(native_size, models=None, image_sizes=None, variants=None, widths=None,
                  alphas=None, sparsities=None):
    """The space for a data set of `native_size` px (square side), flags overriding.

    Defaults: small_cnn always, mobilenet_v2 when the input can be ≥ 32 px; input sizes the
    native one and 3/4 and 1/2 of it (each ≥ the builder's minimum); every variant.
    Raises: ValueError: an unknown model or variant, or no input size left for a model.
    """
    from tftool import models as models_lib

    models = tuple(models or (["small_cnn"] + (["mobilenet_v2"] if native_size >= 32 else [])))
    for name in models:
        if name not in models_lib.MODELS:
            raise ValueError(f"unknown model {name!r}; allowed: {', '.join(models_lib.MODELS)}")
    variants = tuple(variants or DEFAULT_VARIANTS)
    for name in variants:
        if name not in VARIANT_STAGES:
            raise ValueError(f"unknown search variant {name!r}; allowed: "
                             f"{', '.join(VARIANT_STAGES)}")
    sizes = tuple(image_sizes or sorted({native_size, round(native_size * 0.75),
                                         native_size // 2}, reverse=True))
    fitting = tuple(m for m in models if any(s >= min_size(m) for s in sizes))
    if not fitting:
        raise ValueError(f"no input size in {sizes} fits {', '.join(models)} (minimum "
                         f"{min(min_size(m) for m in models)} px); pass larger "
                         f"--search_image_sizes")
    if len(fitting) < len(models):
        dropped = sorted(set(models) - set(fitting))
        raise ValueError(f"{', '.join(dropped)} need inputs of ≥ "
                         f"{min(min_size(m) for m in dropped)} px, and no size in {sizes} is; "
                         f"drop them from --search_models or pass larger --search_image_sizes")
    return Space(models=models, image_sizes=sizes, variants=variants,
                 widths=tuple(widths or DEFAULT_WIDTHS),
                 alphas=tuple(alphas or DEFAULT_ALPHAS),
                 sparsities=tuple(sparsities or DEFAULT_SPARSITIES))


def min_size(model):
    """The smallest input side (px) `model` builds at."""
    return MIN_SIZE.get(model, 32)


def suggest(trial, space):
    """A Candidate sampled by an Optuna trial (conditional parameters: width and stages only
    for small_cnn, alpha only for mobilenet_v2, target_sparsity only for pqat_int8)."""
    model = trial.suggest_categorical("model", list(space.models))
    sizes = [s for s in space.image_sizes if s >= min_size(model)]  # never empty: default_space
    image_size = trial.suggest_categorical(f"image_size_{model}", sizes)
    width = stages = alpha = sparsity = None
    if model == "small_cnn":
        width = trial.suggest_categorical("width", list(space.widths))
        allowed = [s for s in space.stages if s <= max_stages(image_size)] or [1]
        stages = trial.suggest_categorical(f"stages_at_{image_size}", allowed)
    elif model == "mobilenet_v2":
        alpha = trial.suggest_categorical("alpha", list(space.alphas))
    variant = trial.suggest_categorical("variant", list(space.variants))
    if variant == "pqat_int8":
        sparsity = trial.suggest_categorical("target_sparsity", list(space.sparsities))
    return Candidate(model=model, image_size=int(image_size), variant=variant, width=width,
                     stages=stages, alpha=alpha, target_sparsity=sparsity)


def from_params(params):
    """The Candidate of a finished trial's params (FrozenTrial.params)."""
    model = params["model"]
    image_size = params[f"image_size_{model}"]
    return Candidate(model=model, image_size=int(image_size), variant=params["variant"],
                     width=params.get("width"), stages=params.get(f"stages_at_{image_size}"),
                     alpha=params.get("alpha"), target_sparsity=params.get("target_sparsity"))
