"""The run report: a training run's metric log (verl, TRL, OpenRLHF, SB3, CleanRL) read,
mapped onto one set of canonical names, and diagnosed."""
