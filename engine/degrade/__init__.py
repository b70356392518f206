"""Synthetic degradations for tests, training and benchmarks.

Every function takes and returns float32 HxWx3 images in [0, 1] and never modifies its input.
``degrade(image, kind, strength, seed)`` is the one-call entry point; :data:`KIND_PARAMETERS`
documents how strength maps to physical parameters.
"""

from .blur import defocus_blur, disk_kernel, motion_blur, motion_kernel
from .compression import jpeg
from .exposure import lowlight
from .noise import gaussian_noise, poisson_gaussian_noise
from .strength import KIND_PARAMETERS, degradation_parameters, degrade, degrade_chain, step_seed
from .weather import depth_proxy, haze, rain, rain_layer

__all__ = [
    "KIND_PARAMETERS", "degradation_parameters", "degrade", "degrade_chain", "step_seed",
    "gaussian_noise", "poisson_gaussian_noise", "motion_blur", "defocus_blur", "motion_kernel",
    "disk_kernel", "jpeg", "haze", "depth_proxy", "lowlight", "rain", "rain_layer",
]
