"""The core every pattern builds on: profiles, tokenizer, models, measurement, evaluation, the training
loop, artifacts, reports, recipes and baselines. It imports nothing above it (no pattern, agent, study
or widget): patterns plug into the training loop through its hooks (loss, sampler, callbacks)."""
