"""data: corpus sources, tokenizers, the train/validation split, per-record validators and the seeded teaching corpus."""
