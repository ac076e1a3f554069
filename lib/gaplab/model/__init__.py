"""model: the GPT (as plain as nanoGPT's model.py), the fused tied-head loss, devices and precision."""
