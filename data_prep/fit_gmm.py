"Command line: `python -m data_prep.fit_gmm --help`. The code lives in nbs/70_depth.ipynb (dass_nb.depth)."
from dass_nb.depth import fit_gmm_cli

if __name__ == '__main__': fit_gmm_cli()
