"""measure: reading curves (onset, verdict), units (nats, bits per byte, perplexity), scaling fits, sample
generation and sample metrics, the n-gram index, and every literature constant once, cited (references)."""
