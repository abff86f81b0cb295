"""emojax: multimodal emotion recognition in JAX/Flax."""
