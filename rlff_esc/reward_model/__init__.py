"""The future-oriented reward model: learns from (history, reply) what the simulated future said."""
