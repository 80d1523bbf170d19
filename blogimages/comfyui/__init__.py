"""ComfyUI support: the protocol client, workflow templates, LoRA stacks and server routing.

The provider that ties them together is :class:`blogimages.providers.comfyui.ComfyUIProvider`.
"""
