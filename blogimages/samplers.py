"""Sampler and scheduler names: ComfyUI's are the app's own; Automatic1111's labels map onto them.

One table for every place that translates between the two: the Automatic1111 provider
(ComfyUI names to A1111 labels), the diffusers provider and legacy settings (A1111
labels back to ComfyUI names).
"""

from __future__ import annotations

#: ComfyUI sampler names -> Automatic1111's labels.
A1111_SAMPLERS = {
    "euler": "Euler",
    "euler_ancestral": "Euler a",
    "heun": "Heun",
    "dpm_2": "DPM2",
    "dpm_2_ancestral": "DPM2 a",
    "lms": "LMS",
    "dpm_fast": "DPM fast",
    "dpm_adaptive": "DPM adaptive",
    "dpmpp_2s_ancestral": "DPM++ 2S a",
    "dpmpp_sde": "DPM++ SDE",
    "dpmpp_sde_gpu": "DPM++ SDE",
    "dpmpp_2m": "DPM++ 2M",
    "dpmpp_2m_sde": "DPM++ 2M SDE",
    "dpmpp_2m_sde_gpu": "DPM++ 2M SDE",
    "dpmpp_3m_sde": "DPM++ 3M SDE",
    "dpmpp_3m_sde_gpu": "DPM++ 3M SDE",
    "ddim": "DDIM",
    "ddpm": "DDPM",
    "plms": "PLMS",
    "uni_pc": "UniPC",
    "uni_pc_bh2": "UniPC",
    "lcm": "LCM",
    "restart": "Restart",
}
#: ComfyUI scheduler names -> Automatic1111's labels (A1111 1.9+ accepts name or label).
A1111_SCHEDULERS = {
    "automatic": "Automatic",
    "normal": "Normal",
    "karras": "Karras",
    "exponential": "Exponential",
    "polyexponential": "Polyexponential",
    "sgm_uniform": "SGM Uniform",
    "simple": "Simple",
    "ddim_uniform": "DDIM",
    "ddim": "DDIM",
    "beta": "Beta",
    "kl_optimal": "KL Optimal",
    "uniform": "Uniform",
    "align_your_steps": "Align Your Steps",
}
#: A1111 label (lower case) -> the first ComfyUI name listed for it (the non-"_gpu" one).
FROM_A1111 = {label.lower(): name for name, label in reversed(A1111_SAMPLERS.items())}


def comfyui_sampler(name: str) -> str:
    """ComfyUI's name for ``name``, written the ComfyUI way or as an A1111 label ("Euler a").

    A name neither knows comes back lower-cased, for the caller to refuse or pass on.
    """
    key = (name or "").strip().lower()
    return key if key in A1111_SAMPLERS else FROM_A1111.get(key, key)
