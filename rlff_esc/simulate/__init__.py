"""Future-trajectory simulation: batched multi-agent rollouts, future-oriented rewards, a resumable store."""
