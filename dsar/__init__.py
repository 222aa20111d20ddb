"""Code generated from protos/ by scripts/generate-protos. Do not edit."""
