"""What a run shows: the terminal (progress line, closing block), TensorBoard (scalars, tags,
HPARAMS, custom scalars, physics pictures) and summary.json."""
