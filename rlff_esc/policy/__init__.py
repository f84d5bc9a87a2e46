"""The policy: reasoning format, SFT warm-up and GRPO training against the future-oriented reward."""
