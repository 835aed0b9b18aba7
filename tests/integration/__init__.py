"""Through the lab, exactly as a client would (needs root)."""
