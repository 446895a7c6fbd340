"""sdshape: where a diffusion model's parameters, milliseconds, megabytes and joules go."""

__version__ = "0.1.0"
