"""The registration authority: what the CA is willing to issue, and to whom."""
