"Command line: `python -m data_prep.fit_gmm --help`. The code lives in nbs/47_methods.depth_distribution.ipynb."
from dass_nb.methods.depth_distribution import fit_gmm_cli

if __name__ == '__main__': fit_gmm_cli()
