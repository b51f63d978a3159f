"""Inference: inputs -> preprocess -> run (:mod:`.runtime`) -> postprocess -> results (:func:`create_model`)."""
