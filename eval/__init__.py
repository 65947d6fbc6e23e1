"""The graded question bank, its runner and metrics, the baselines, the regression gate, the
training of the learned models (`train`) and feedback → candidate questions. Above the core."""
