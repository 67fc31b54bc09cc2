"""Meta-learners: rl2/ (and, as they land, maml/, mql/). Same file names in each folder."""
